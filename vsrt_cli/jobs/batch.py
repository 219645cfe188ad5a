"""``vsrt batch``: every clip under a folder, mirrored into an output folder, resumable.

A clip whose output already exists is complete (outputs only ever appear under their final
name by an atomic rename), so a run that was killed and started again redoes exactly the clips
it had not finished. One clip failing never stops the others. Work yields events; the CLI draws.

With ``chunk_seconds`` a long clip is cut into chunks of about that many seconds (by frame
index, from a demux-only scan: :mod:`vsrt_cli.jobs.chunked`); its chunks are units of work like whole
clips, spread over the executor's workers, and this driver stitches them once all are in place.
A chunk finished by an earlier run is not run again; the chunks a run killed after a clip's
stitch left beside its complete output are removed when the rerun skips it. This driver alone
decides what to skip or resume and writes the report, whatever executor runs the units.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from fnmatch import fnmatch
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from vsrt_cli.errors import ConfigError, InputError, VsrtError
from vsrt_cli.jobs.executors.local import LocalExecutor, clip_job, run_clip, skipped
from vsrt_cli.jobs.executors.units import (  # re-exported: the batch's vocabulary
    ChunkFinished, ChunkProgress, ChunkTask, Clip, ClipFinished, ClipProgress, ClipResult, ClipStarted, Status, Unit,
)
from vsrt_cli.io.frames import IMAGE_SUFFIXES, natural_key
from vsrt_cli.io.outputs import output_names, refuse_input, remove_stale_partials
from vsrt_cli.io.sidecar import sidecar_path
from vsrt_cli.model.vsrt import VSRT
from vsrt_cli.engine.pipeline import Event, Finished, Notice, UpscaleJob, check_schedule
from vsrt_cli.jobs.provenance import ModelId, recording

if TYPE_CHECKING:
    from vsrt_cli.jobs.chunked import ChunkPlan

__all__ = [
    "REPORT", "BatchEvent", "BatchFinished", "BatchStarted", "ChunkFinished", "ChunkProgress", "ChunkTask", "Clip",
    "ClipFinished", "ClipProgress", "ClipResult", "ClipStarted", "Executor", "Status", "batch", "find_clips",
]

VIDEO_SUFFIXES = (
    ".mp4", ".m4v", ".mkv", ".mov", ".webm", ".avi", ".ts", ".mts", ".m2ts", ".mpg", ".mpeg",
    ".wmv", ".flv", ".3gp", ".ogv", ".y4m",
)
REPORT = "vsrt-batch.json"

@dataclass(frozen=True)
class BatchStarted:
    clips: tuple[Clip, ...]
    total_frames: int | None


class Executor(Protocol):
    def run(self, model: VSRT, units: list[Unit], template: UpscaleJob, record: ModelId | None) -> Iterator[BatchEvent]: ...


@dataclass(frozen=True)
class BatchFinished:
    results: tuple[ClipResult, ...]
    report: Path

    @property
    def failed(self) -> int:
        return sum(r.status == "failed" for r in self.results)


BatchEvent = BatchStarted | ClipStarted | ClipProgress | ClipFinished | ChunkProgress | ChunkFinished | BatchFinished | Event


def _is_frame_folder(folder: Path) -> bool:
    return any(p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() for p in folder.iterdir())


def find_clips(
    root: Path, out_root: Path, *, pattern: str | None = None, frame_folders: bool = False,
    container: str | None = None,
) -> list[Clip]:
    """The clips under ``root`` in natural order: video files by extension (or files whose path
    relative to ``root`` matches the glob ``pattern``), and with ``frame_folders`` every folder
    that directly holds PNG/JPEG frames. Hidden files and folders, and ``out_root`` if it lies
    inside ``root``, are never inputs. Each output mirrors the clip's relative path; a video's
    extension becomes ``container``, or ``.mkv`` where the writer cannot produce the input's
    (:func:`~vsrt_cli.io.outputs.output_names`).
    ``out_root`` may not be ``root`` or a folder above it (:class:`OutputError`)."""
    if not root.is_dir():
        raise InputError(f"{root} is not a folder; `vsrt batch` takes a folder of clips (use `vsrt upscale` for one file)")
    refuse_input(out_root, root)  # above the input, the mirrored outputs could land on inputs
    out_abs = out_root.resolve()
    clips: list[Clip] = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(
            (d for d in dirnames if not d.startswith(".") and (here / d).resolve() != out_abs),
            key=lambda d: natural_key(Path(d)),
        )
        relative_dir = here.relative_to(root)
        if frame_folders and here != root and _is_frame_folder(here):
            clips.append(Clip(here, out_root / relative_dir, relative_dir.as_posix()))
        for name in sorted(filenames, key=lambda n: natural_key(Path(n))):
            relative = relative_dir / name
            if name.startswith("."):  # hidden folders were pruned above
                continue
            if pattern:
                wanted = fnmatch(relative.as_posix(), pattern) or fnmatch(name, pattern)
            else:
                wanted = Path(name).suffix.lower() in VIDEO_SUFFIXES
            if wanted:
                clips.append(Clip(here / name, out_root / relative, relative.as_posix()))
    names = output_names([c.name for c in clips if not c.source.is_dir()], container)
    clips = [replace(c, output=out_root / names[c.name]) if c.name in names else c for c in clips]
    return sorted(clips, key=lambda c: [natural_key(Path(part)) for part in Path(c.name).parts])


def count_frames(clip: Clip) -> int | None:
    """The clip's frame count if a quick look can tell (None when it cannot)."""
    from vsrt_cli.io.probe import probe

    try:
        if clip.source.is_dir():
            return sum(1 for p in clip.source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        return probe(clip.source).frames
    except VsrtError:
        return None


def write_report(path: Path, results: list[ClipResult]) -> None:
    """The results so far as JSON, written atomically (a killed run leaves the last good one)."""
    rows = []
    for r in results:
        row = {k: v for k, v in dataclasses.asdict(r).items() if k not in ("clip", "detail")}
        row.update(clip=r.clip.name, source=str(r.clip.source), output=str(r.clip.output))
        rows.append(row)
    counts = {s: sum(r.status == s for r in results) for s in ("done", "skipped", "failed")}
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps({"clips": rows, **counts}, indent=2) + "\n")
    os.replace(tmp, path)


def batch(
    model: VSRT, root: Path, out_root: Path, template: UpscaleJob, *,
    pattern: str | None = None, frame_folders: bool = False, record: ModelId | None = None,
    container: str | None = None, executor: Executor | None = None, chunk_seconds: float | None = None,
) -> Iterator[BatchEvent]:
    """Upscale every clip of ``root`` into ``out_root`` with ``template``'s settings (its
    ``source``/``output`` are replaced per clip; ``overwrite`` redoes finished clips). With
    ``record`` (the model's identity) each output gets its ``OUT.vsrt.json``, linked from the
    report. ``executor`` (see :mod:`vsrt_cli.jobs.executors`) runs the clips elsewhere; None: here,
    one after another. ``chunk_seconds``: cut video clips longer than that into chunks of about
    that length (see the module docstring)."""
    check_schedule(model, template.schedule)
    if chunk_seconds is not None and not chunk_seconds > 0:
        raise ConfigError(f"--chunk-seconds {chunk_seconds:g}: must be positive")
    clips = find_clips(root, out_root, pattern=pattern, frame_folders=frame_folders, container=container)
    if not clips:
        what = f"matching {pattern!r}" if pattern else f"with a video extension ({', '.join(VIDEO_SUFFIXES[:5])}, ...)"
        hint = "" if frame_folders else "; add --frame-folders for folders of images"
        raise InputError(f"{root} holds no clips {what}{hint}; or pass --glob PATTERN")
    clips = [replace(c, frames=count_frames(c)) for c in clips]
    counts = [c.frames for c in clips]
    total = None if any(n is None for n in counts) else sum(n or 0 for n in counts)
    try:
        out_root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the output folder {out_root}: {exc}; choose a writable -o folder") from exc
    report = out_root / REPORT
    yield BatchStarted(tuple(clips), total)
    results: list[ClipResult] = []
    order = {clip.source: number for number, clip in enumerate(clips, 1)}
    if executor is None and chunk_seconds is None:
        runs = _serial(model, clips, template, record)
    else:
        runs = _Driver(model, template, record, chunk_seconds).run(executor or LocalExecutor(), clips)
    with contextlib.closing(runs):
        for event in runs:
            if isinstance(event, ClipStarted):  # numbered by the clip's place in the batch, whoever runs it
                event = ClipStarted(order[event.clip.source], event.clip)
            elif isinstance(event, ClipFinished):  # the report lists clips in their order, whoever ran them
                results.append(event.result)
                results.sort(key=lambda r: order[r.clip.source])
                write_report(report, results)
            yield event
    yield BatchFinished(tuple(results), report)


def _serial(model: VSRT, clips: list[Clip], template: UpscaleJob, record: ModelId | None) -> Iterator[BatchEvent]:
    """The plain local loop: one clip after another in this process."""
    for number, clip in enumerate(clips, 1):
        yield ClipStarted(number, clip)
        result = yield from run_clip(model, clip, template, record)
        yield ClipFinished(result)


def _failed(clip: Clip, exc: Exception) -> ClipResult:
    if isinstance(exc, VsrtError):
        return ClipResult(clip, "failed", str(exc))
    return ClipResult(clip, "failed", f"internal error: {type(exc).__name__}: {exc}", detail=traceback.format_exc())


@dataclass
class _Chunked:
    """The driver's account of one chunked clip while its chunks run."""

    number: int  # the clip's place in the batch (1-based)
    clip: Clip
    plan: ChunkPlan
    left: set[int]  # chunks still to finish
    done: dict[int, int]  # frames written per chunk
    started: float = field(default_factory=time.perf_counter)
    announced: bool = False
    errors: list[ChunkFinished] = field(default_factory=list)
    ran: list[dict] = field(default_factory=list)  # what each chunk this run made ran with


class _Driver:
    """Skips and resumes decided here; whole clips and chunks handed to an executor; chunked
    clips stitched here when their last chunk is in."""

    def __init__(self, model: VSRT, template: UpscaleJob, record: ModelId | None, chunk_seconds: float | None) -> None:
        self.model, self.template, self.record, self.seconds = model, template, record, chunk_seconds
        self.weights: str | None = None  # the model's digest, computed once for every chunk key

    def run(self, executor: Executor, clips: list[Clip]) -> Iterator[BatchEvent]:
        units: list[Unit] = []
        chunked: dict[Path, _Chunked] = {}
        for number, clip in enumerate(clips, 1):
            remove_stale_partials(clip.output)
            if clip.output.exists() and not self.template.overwrite:
                yield ClipStarted(number, clip)
                if self.seconds is not None and not clip.source.is_dir():
                    yield from self._remove_spent(clip)
                yield ClipFinished(skipped(clip))
                continue
            state = None
            if self.seconds is not None and not clip.source.is_dir():
                try:
                    state = yield from self._plan(number, clip)
                except Exception as exc:  # the clip fails, the batch goes on
                    yield ClipStarted(number, clip)
                    yield ClipFinished(_failed(clip, exc))
                    continue
            if state is None:
                units.append(clip)
            elif state.left:
                chunked[clip.source] = state
                units += [ChunkTask(clip, state.plan, n) for n in sorted(state.left)]
            else:  # every chunk finished by an earlier run: only the stitch is left
                yield ClipStarted(number, clip)
                yield ClipFinished((yield from self._stitch(state)))
        if not units:
            return
        # closed explicitly: Ctrl-C must stop the workers and remove their partials now
        with contextlib.closing(executor.run(self.model, units, self.template, self.record)) as events:
            for event in events:
                if isinstance(event, (ChunkProgress, ChunkFinished)):
                    yield from self._chunk_event(chunked[event.task.clip.source], event)
                else:
                    yield event

    def _remove_spent(self, clip: Clip) -> Iterator[BatchEvent]:
        """A complete clip's chunk files, left by a run killed after its stitch, removed
        (:func:`~vsrt_cli.jobs.chunked.remove_spent_chunks`); a clip whose key cannot be made (its
        input unreadable now) keeps them, and is skipped all the same."""
        from vsrt_cli.jobs.chunked import job_key, remove_spent_chunks, weights_digest

        try:
            self.weights = self.weights or weights_digest(self.model)
            job = clip_job(self.template, clip, self.record)
            spent = remove_spent_chunks(job, job_key(self.model, job, self.weights))
        except (OSError, VsrtError):
            return
        if spent:
            yield Notice(f"{clip.name}: removed {len(spent)} chunk file(s) the run that finished it left behind")

    def _plan(self, number: int, clip: Clip) -> Iterator[BatchEvent]:
        """The clip's chunk plan with the chunks still missing (None: run it whole)."""
        from vsrt_cli.jobs.chunked import plan_clip, weights_digest
        from vsrt_cli.io.probe import probe

        try:
            clip.output.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create {clip.output.parent}: {exc}") from exc
        probe(clip.source)  # an input that is no video fails here, not below
        self.weights = self.weights or weights_digest(self.model)
        job = clip_job(self.template, clip, self.record)
        try:
            plan = plan_clip(self.model, job, seconds=self.seconds, weights=self.weights)
        except InputError as exc:  # the scan found no timestamps to cut by: the clip runs whole
            yield Notice(f"{clip.name}: {exc}".replace("run it without --chunks", "it runs whole"))
            return None
        if len(plan.chunks) == 1:
            return None
        left = set(plan.missing())
        done = {c.number: c.frames for c in plan.chunks if c.number not in left}
        return _Chunked(number, clip, plan, left, done)

    def _chunk_event(self, state: _Chunked, event: ChunkProgress | ChunkFinished) -> Iterator[BatchEvent]:
        clip, total = state.clip, state.plan.total
        if not state.announced:
            state.announced = True
            yield ClipStarted(state.number, clip)
        yield event
        if isinstance(event, ChunkProgress):
            state.done[event.task.number] = event.done
        else:
            remove_stale_partials(event.task.path)
            state.left.discard(event.task.number)
            if event.error:
                state.errors.append(event)
                state.done.pop(event.task.number, None)
            else:
                state.done[event.task.number] = event.task.chunk.frames
                if event.ran is not None:
                    state.ran.append(event.ran)
        yield ClipProgress(clip, sum(state.done.values()), total)
        if state.left:
            return
        if state.errors:
            first = min(state.errors, key=lambda e: e.task.number)
            kept = len(state.plan.chunks) - len(state.errors)
            reason = f"chunk {first.task.number + 1} of {len(state.plan.chunks)}: {first.error} ({kept} finished chunk(s) kept for a rerun)"
            result = ClipResult(clip, "failed", reason, sum(state.done.values()), time.perf_counter() - state.started, detail=first.detail)
        else:
            result = yield from self._stitch(state)
        yield ClipFinished(result)

    def _stitch(self, state: _Chunked) -> Iterator[BatchEvent]:
        """The chunks stitched into the clip's output and its record written (as `upscale
        --chunks` does); the clip's result is the generator's return value."""
        from vsrt_cli.jobs.chunked import finish

        clip, job = state.clip, state.plan.job
        frames = 0
        try:
            ran = state.ran if len(state.ran) == len(state.plan.chunks) else None  # all made by this run
            for event in recording(finish(state.plan, state.started), job, self.record, ran=ran):
                if isinstance(event, Finished):
                    frames = event.frames
                elif isinstance(event, Notice):
                    yield replace(event, message=f"{clip.name}: {event.message}")
        except VsrtError as exc:
            return ClipResult(clip, "failed", str(exc), 0, time.perf_counter() - state.started)
        sidecar = str(sidecar_path(clip.output)) if self.record is not None else ""
        return ClipResult(clip, "done", "", frames, time.perf_counter() - state.started, sidecar=sidecar)
