"""Units of a batch run in this process, one after another; and the two functions every
executor runs its units with (:func:`run_clip`, :func:`run_chunk_task`), here or on a worker.
A unit's failure becomes its result, never an exception: one clip must not stop the rest.
"""

from __future__ import annotations

import contextlib
import os
import time
import traceback
from collections.abc import Generator, Iterator
from dataclasses import replace
from typing import Any

from vsrt_cli.errors import VsrtError
from vsrt_cli.jobs.executors.units import (
    ChunkFinished, ChunkProgress, ChunkTask, Clip, ClipFinished, ClipResult, ClipStarted, Unit,
)
from vsrt_cli.io.outputs import host, remove_stale_partials
from vsrt_cli.io.sidecar import sidecar_path
from vsrt_cli.engine.pipeline import Finished, Progress, UpscaleJob, upscale
from vsrt_cli.jobs.provenance import ModelId, ran_with, recording, tag_before_run


def clip_job(template: UpscaleJob, clip: Clip, record: ModelId | None) -> UpscaleJob:
    """``template`` for one clip: its paths, and (with ``record``) the provenance line for the
    container's header (`vsrt info`)."""
    job = replace(template, source=clip.source, output=clip.output, frames_out=clip.source.is_dir())
    if record is not None and not job.writes_frames:
        job = replace(job, metadata={"comment": tag_before_run(job, record)})
    return job


def existing_sidecar(output: Any) -> str:
    """The record a previous run left beside a skipped clip's output ("" if none)."""
    path = sidecar_path(output)
    return str(path) if path.is_file() else ""


def skipped(clip: Clip) -> ClipResult:
    return ClipResult(clip, "skipped", "output exists (--overwrite redoes it)", sidecar=existing_sidecar(clip.output))


def run_clip(model: Any, clip: Clip, template: UpscaleJob, record: ModelId | None = None) -> Generator[Any, None, ClipResult]:
    """Run one clip, yielding the pipeline's events; its result is the generator's return value."""
    remove_stale_partials(clip.output)
    if clip.output.exists() and not template.overwrite:
        return skipped(clip)
    started = time.perf_counter()
    try:
        clip.output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return ClipResult(clip, "failed", f"cannot create {clip.output.parent}: {exc}")
    done, repaired = 0, 0
    try:
        job = clip_job(template, clip, record)
        # closed explicitly: when the batch is closed (Ctrl-C in the CLI), the clip's upscale
        # must remove its partial output now, not whenever the generator is collected
        events = recording(upscale(model, job), job, record)
        with contextlib.closing(events) as events:
            for event in events:
                if isinstance(event, Progress):
                    done = event.done
                elif isinstance(event, Finished):
                    done, repaired = event.frames, event.repaired
                yield event
    except VsrtError as exc:
        return ClipResult(clip, "failed", str(exc), done, time.perf_counter() - started)
    except Exception as exc:  # one clip's bug must not stop the rest; the traceback is kept
        reason = f"internal error: {type(exc).__name__}: {exc}"
        return ClipResult(clip, "failed", reason, done, time.perf_counter() - started, detail=traceback.format_exc())
    sidecar = str(sidecar_path(clip.output)) if record is not None else ""
    return ClipResult(clip, "done", "", done, time.perf_counter() - started, repaired, sidecar=sidecar)


def run_chunk_task(model: Any, task: ChunkTask, device: Any = None) -> Generator[ChunkProgress, None, ChunkFinished]:
    """Run one chunk (on ``device``, default the plan's), yielding its progress; the result is
    the generator's return value. Closing it mid-chunk leaves no partial file."""
    from vsrt_cli.jobs.chunked import run_planned

    plan = task.plan if device is None else replace(task.plan, job=replace(task.plan.job, device=device))
    started = time.perf_counter()
    where = f"{host()}-{os.getpid()}"
    try:
        work = run_planned(model, plan, task.number)
        with contextlib.closing(work):
            for done in work:
                yield ChunkProgress(task, done)
    except VsrtError as exc:
        return ChunkFinished(task, str(exc), seconds=time.perf_counter() - started, worker=where)
    except Exception as exc:
        return ChunkFinished(task, f"internal error: {type(exc).__name__}: {exc}", traceback.format_exc(),
                             time.perf_counter() - started, where)
    return ChunkFinished(task, "", seconds=time.perf_counter() - started, worker=where, ran=ran_with(plan.job))


def run_unit(model: Any, unit: Unit, template: UpscaleJob, record: ModelId | None, device: Any = None) -> Generator[Any, None, Any]:
    """:func:`run_chunk_task` or :func:`run_clip` (on ``device``, default the template's)."""
    if isinstance(unit, ChunkTask):
        return (yield from run_chunk_task(model, unit, device))
    return (yield from run_clip(model, unit, template if device is None else replace(template, device=device), record))


class LocalExecutor:
    """The units one after another in this process (see :mod:`vsrt_cli.jobs.executors`)."""

    def run(self, model: Any, units: list[Unit], template: UpscaleJob, record: ModelId | None) -> Iterator[Any]:
        for number, unit in enumerate(units, 1):
            if isinstance(unit, Clip):
                yield ClipStarted(number, unit)
            result = yield from run_unit(model, unit, template, record)
            yield result if isinstance(result, ChunkFinished) else ClipFinished(result)
