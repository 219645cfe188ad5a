"""``vsrt batch``: every clip under a folder, mirrored into an output folder, resumable.

A clip whose output already exists is complete (outputs only ever appear under their final
name by an atomic rename), so a run that was killed and started again redoes exactly the clips
it had not finished. One clip failing never stops the others. Work yields events; the CLI draws.
"""

from __future__ import annotations

import contextlib

import dataclasses
import json
import os
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, replace
from fnmatch import fnmatch
from pathlib import Path
from typing import Literal, Protocol

from vsrt_cli.errors import ConfigError, InputError, VsrtError
from vsrt_cli.io.frames import IMAGE_SUFFIXES, natural_key
from vsrt_cli.io.outputs import output_names, refuse_input, remove_stale_partials
from vsrt_cli.io.sidecar import sidecar_path
from vsrt_cli.model.vsrt import VSRT
from vsrt_cli.pipeline import Event, Finished, Progress, UpscaleJob, check_schedule, upscale
from vsrt_cli.provenance import ModelId, recording, tag_before_run

VIDEO_SUFFIXES = (
    ".mp4", ".m4v", ".mkv", ".mov", ".webm", ".avi", ".ts", ".mts", ".m2ts", ".mpg", ".mpeg",
    ".wmv", ".flv", ".3gp", ".ogv", ".y4m",
)
REPORT = "vsrt-batch.json"

Status = Literal["done", "skipped", "failed"]


@dataclass(frozen=True)
class Clip:
    """One input (a video file or a folder of frames) and where its output goes."""

    source: Path
    output: Path
    name: str  # the path relative to the input folder, for tables and reports
    frames: int | None = None  # as far as a quick probe can tell


@dataclass(frozen=True)
class ClipResult:
    clip: Clip
    status: Status
    reason: str = ""
    frames: int = 0
    seconds: float = 0.0
    repaired: int = 0
    detail: str = ""  # the traceback of an unexpected error (shown with --debug)
    sidecar: str = ""  # the output's record of how it was made (OUT.vsrt.json), when one was written


@dataclass(frozen=True)
class BatchStarted:
    clips: tuple[Clip, ...]
    total_frames: int | None


@dataclass(frozen=True)
class ClipStarted:
    number: int  # 1-based
    clip: Clip


@dataclass(frozen=True)
class ClipProgress:
    """Frames done of one clip, when several run at once (an executor's workers)."""

    clip: Clip
    done: int
    total: int | None


class Executor(Protocol):
    def run(self, model: VSRT, clips: list[Clip], template: UpscaleJob, record: ModelId | None) -> Iterator[BatchEvent]: ...


@dataclass(frozen=True)
class ClipFinished:
    result: ClipResult


@dataclass(frozen=True)
class BatchFinished:
    results: tuple[ClipResult, ...]
    report: Path

    @property
    def failed(self) -> int:
        return sum(r.status == "failed" for r in self.results)


BatchEvent = BatchStarted | ClipStarted | ClipProgress | ClipFinished | BatchFinished | Event


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
    container: str | None = None, executor: Executor | None = None,
) -> Iterator[BatchEvent]:
    """Upscale every clip of ``root`` into ``out_root`` with ``template``'s settings (its
    ``source``/``output`` are replaced per clip; ``overwrite`` redoes finished clips). With
    ``record`` (the model's identity) each output gets its ``OUT.vsrt.json``, linked from the
    report. ``executor`` (see :mod:`vsrt_cli.executors`) runs the clips elsewhere; None: here,
    one after another."""
    check_schedule(model, template.schedule)
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
    order = {clip.source: number for number, clip in enumerate(clips)}
    runs = _serial(model, clips, template, record) if executor is None else _spread(executor, model, clips, template, record)
    with contextlib.closing(runs):
        for event in runs:
            if isinstance(event, ClipFinished):  # the report lists clips in their order, whoever ran them
                results.append(event.result)
                results.sort(key=lambda r: order[r.clip.source])
                write_report(report, results)
            yield event
    yield BatchFinished(tuple(results), report)


def _serial(model: VSRT, clips: list[Clip], template: UpscaleJob, record: ModelId | None) -> Iterator[BatchEvent]:
    """The local executor: one clip after another in this process."""
    for number, clip in enumerate(clips, 1):
        yield ClipStarted(number, clip)
        result = yield from _one(model, clip, template, record)
        yield ClipFinished(result)


def _spread(executor: Executor, model: VSRT, clips: list[Clip], template: UpscaleJob, record: ModelId | None) -> Iterator[BatchEvent]:
    """Skips decided here (the driver), the other clips run by ``executor``."""
    todo = []
    for number, clip in enumerate(clips, 1):
        remove_stale_partials(clip.output)
        if clip.output.exists() and not template.overwrite:
            yield ClipStarted(number, clip)
            yield ClipFinished(ClipResult(clip, "skipped", "output exists (--overwrite redoes it)", sidecar=_existing_sidecar(clip.output)))
        else:
            todo.append(clip)
    if todo:
        yield from executor.run(model, todo, template, record)


def _one(model: VSRT, clip: Clip, template: UpscaleJob, record: ModelId | None = None) -> Iterator[BatchEvent]:
    """Run one clip, turning its failure into a result (the generator's return value)."""
    remove_stale_partials(clip.output)
    if clip.output.exists() and not template.overwrite:
        return ClipResult(clip, "skipped", "output exists (--overwrite redoes it)", sidecar=_existing_sidecar(clip.output))
    started = time.perf_counter()
    try:
        clip.output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return ClipResult(clip, "failed", f"cannot create {clip.output.parent}: {exc}")
    job = replace(template, source=clip.source, output=clip.output, frames_out=clip.source.is_dir())
    done, repaired = 0, 0
    try:
        if record is not None and not job.writes_frames:  # the container's own line (`vsrt info`)
            job = replace(job, metadata={"comment": tag_before_run(job, record)})
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


def _existing_sidecar(output: Path) -> str:
    """The record a previous run left beside a skipped clip's output ("" if none)."""
    path = sidecar_path(output)
    return str(path) if path.is_file() else ""
