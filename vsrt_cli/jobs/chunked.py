"""``vsrt upscale --chunks N``: one clip upscaled as N chunks, each encoded video-only into its
own file, then stitched (a remux, :mod:`vsrt_cli.io.stitch`) with the source's audio and
subtitles. The output is the one an unchunked run writes, frame for frame (see
:mod:`vsrt_cli.jobs.chunks` for why the model sees the same frames).

A finished chunk is a hidden file beside the output, named by a key of everything that shapes
its pixels (input fingerprint, model weights, schedule, precision, encoder settings) and by its
number; it appears under that name only when complete (the writer's temp file + rename, the temp
named per host and process). A rerun after a crash finds the finished chunks and redoes only the
missing ones; the chunk files are removed once the output is in place. A run killed between
the two leaves a complete output with its chunks beside it: a rerun that finds the output in
place removes them (:func:`remove_spent_chunks`, which says when a chunk file is provably spent).

:func:`run_chunk` is the unit of work an executor can send elsewhere; it yields the number of
frames done so far. The pipeline never prints: events go to the CLI.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import av
import torch

from vsrt_cli.jobs.chunks import Chunk, chunks_for_seconds, plan_chunks
from vsrt_cli.errors import ConfigError, InputError
from vsrt_cli.io.background import BackgroundWriter
from vsrt_cli.io.outputs import refuse_input, remove_stale_partials
from vsrt_cli.io.probe import VideoInfo, probe
from vsrt_cli.io.reader import Frame
from vsrt_cli.io.metadata import own_line
from vsrt_cli.io.span import Cut, shown_range
from vsrt_cli.io.stitch import Scan, container_comment, read_range, scan, stitch
from vsrt_cli.io.encoders import resolve_codec
from vsrt_cli.io.writer import VideoWriter
from vsrt_cli.model.vsrt import VSRT
from vsrt_cli.engine.pipeline import (
    Event, Finished, Notice, Progress, Started, UpscaleJob, check_paths, check_restore, check_schedule, finisher,
    out_planes, output_frame, planes_in, prepare_runner, window_quant,
)
from vsrt_cli.engine.runtime import Download, configure_device, upload_frame
from vsrt_cli.engine.schedule import plan_tiles
from vsrt_cli.engine.tiles import TileRunner

CHUNK = "vsrt-chunk"


def weights_digest(model: VSRT) -> str:
    """The sha256 of the model's tensors (names and float32 values), for :func:`job_key`."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu", torch.float32).numpy().tobytes())
    return digest.hexdigest()


def job_key(model: VSRT, job: UpscaleJob, weights: str | None = None) -> str:
    """12 hex digits naming everything that shapes a chunk's pixels and packets (``weights``:
    the model's :func:`weights_digest` when already known, e.g. once for a whole batch)."""
    from vsrt_cli.jobs.provenance import fingerprint

    digest = hashlib.sha256((weights or weights_digest(model)).encode())
    facts = {
        "input": fingerprint(job.source), "schedule": dataclasses.asdict(job.schedule),
        "precision": job.precision, "device": job.device.type,
        "encode": dataclasses.asdict(replace(job.encode, copy_streams=False)),
    }
    if job.size is not None:  # absent for x4 and auto: the keys of earlier chunks stay valid
        facts["size"] = dataclasses.asdict(job.size)
    if job.restore is not None:
        facts["restore"] = job.restore
    if job.span is not None:  # other frames, and the windows reflect at the span's ends
        facts["span"] = dataclasses.asdict(job.span)
    if job.device_colour != (job.device.type == "cuda"):  # not the device's default: other pixels
        facts["colour_on_device"] = job.device_colour
    digest.update(json.dumps(facts, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:12]


def chunk_path(output: Path, key: str, chunk: Chunk) -> Path:
    """``.NAME.EXT.vsrt-chunk-KEY-002of003.nut`` beside the output. The output's whole name is
    in it, extension included, so ``a.mp4``'s chunks are never taken for ``a.webm``'s (another
    codec) nor removed as its leftovers. NUT keeps the source's time base and timestamps exactly
    (MP4 would move a chunk that starts late by its edit list's rounding)."""
    return _chunk_name(output, key, chunk.number, chunk.count)


def _chunk_name(output: Path, key: str, number: int, count: int) -> Path:
    return output.with_name(f".{output.name}.{CHUNK}-{key}-{number + 1:03d}of{count:03d}.nut")


def _finished_chunk(output: Path, key: str) -> re.Pattern[str]:
    """The name of a finished chunk of ``output`` with ``key``, any number and count (a temp has
    the writer's ``vsrt-partial-HOST-PID`` in its name, so never matches)."""
    return re.compile(re.escape(f".{output.name}.{CHUNK}-{key}-") + r"(?P<number>\d{3})of(?P<count>\d{3})\.nut")


def spent_chunks(job: UpscaleJob, key: str) -> list[Path]:
    """The finished chunk files that a run of this very job (``key``: its :func:`job_key`) left
    beside its complete output, killed after the stitch renamed the output into place but
    before the chunks were removed. Only files proven spent, else none:

    - the name is a finished chunk of ``job.output`` (its whole name) with this job's key: a
      file only vsrt writes, for this output and these settings;
    - the output is a file in place (it appears only by rename, once complete) and carries the
      container comment this job writes (the same vsrt, model, input fingerprint and options,
      ``--overwrite`` included; both without one when no record is kept), so it is this job's
      result and the chunks can only make it again;
    - each chunk is no newer than the output: one a live ``--overwrite`` run writes now (here or
      on another host sharing the folder) is newer, and is left to that run.
    """
    output = job.output
    if not output.is_file() or output.is_symlink():
        return []
    try:
        if own_line(container_comment(output)) != own_line(job.metadata.get("comment")):
            return []
        made = output.stat().st_mtime_ns
        name = _finished_chunk(output, key)
        return sorted(
            path for path in output.parent.iterdir()
            if name.fullmatch(path.name) and path.is_file() and not path.is_symlink() and path.stat().st_mtime_ns <= made
        )
    except (OSError, av.FFmpegError):  # unreadable: nothing is proven, nothing is removed
        return []


def remove_spent_chunks(job: UpscaleJob, key: str) -> list[Path]:
    """Remove :func:`spent_chunks` and, for the same chunk names, the temporaries of this host's
    dead processes (the shared rule: :func:`~vsrt_cli.io.outputs.remove_stale_partials`).
    Returns the chunk files removed. Nothing else in the folder is touched."""
    spent = spent_chunks(job, key)
    name = _finished_chunk(job.output, key)
    counts = {int(m["count"]) for m in (name.fullmatch(p.name) for p in spent) if m}
    for count in counts:
        for number in range(count):
            remove_stale_partials(_chunk_name(job.output, key, number, count))
    for path in spent:
        path.unlink(missing_ok=True)
    return spent


def make_runner(model: VSRT, job: UpscaleJob, info: VideoInfo) -> TileRunner:
    sched, config = job.schedule, model.config
    grid = plan_tiles(
        info.height, info.width, tile=sched.tile, overlap=sched.overlap if sched.tile else 0,
        multiple=config.size_multiple, fixed=config.norm == "tile",
    )
    # chunks come from several processes (reruns, Ray workers) and are promised to be the frames
    # of one run: the same cuDNN algorithms in each
    device = configure_device(job.device, job.precision, deterministic=True)
    return prepare_runner(TileRunner(model, grid, batch=sched.batch, device=device, precision=job.precision), model, job)


def run_chunk(runner: TileRunner, job: UpscaleJob, info: VideoInfo, frames: Scan, chunk: Chunk, path: Path) -> Iterator[int]:
    """Upscale ``chunk`` into ``path`` (video only, ``job``'s encoder settings); yields the
    frames written so far. The file appears only when complete."""
    codec = resolve_codec(job.encode.codec, job.output.suffix, info.colour)  # the output's, not NUT's
    frame = output_frame(job, info.width, info.height, info.sample_aspect)
    writer = VideoWriter(
        path, width=frame.width, height=frame.height, time_base=info.time_base, rate=info.rate,
        bit_depth=info.bit_depth, settings=replace(job.encode, codec=codec, copy_streams=False), source=None,
        overwrite=True, colour=info.colour, sample_aspect=frame.sample_aspect,
    )
    deep = info.bit_depth > 8
    decoded = read_range(info, frames, chunk.decode_from, chunk.decode_to, yuv=planes_in(job, deep))
    with BackgroundWriter(writer) as sink:
        yield from _run_windows(runner, decoded, chunk, sink, deep, out_planes(job, writer, deep), job, finisher(job, frame))


def _run_windows(runner: TileRunner, frames: Iterator[Frame], chunk: Chunk, sink: BackgroundWriter, deep: bool,
                 yuv: tuple[int, bool, bool] | None, job: UpscaleJob, finish) -> Iterator[int]:
    """The chunk's model calls, each run once its last frame is decoded; only the chunk's own
    output frames are written."""
    todo = list(chunk.windows)
    buffer: dict[int, torch.Tensor] = {}
    stamps: dict[int, int | None] = {}
    quants: dict[int, float | None] = {}
    done = 0
    for frame in frames:
        buffer[frame.index] = upload_frame(frame.image, runner.device)
        stamps[frame.index] = frame.pts
        quants[frame.index] = frame.quant
        while todo and max(todo[0].frames) <= frame.index:
            win = todo.pop(0)
            batch = torch.stack([buffer[i] for i in win.frames])
            hr = finish(runner(batch, [pos for pos, _ in win.outputs], win.frames, window_quant(job, [quants[i] for i in win.frames])))
            for image, (_, index) in zip(Download(hr, deep, yuv, runner.take_check()).images(), win.outputs):
                if chunk.owns(index):
                    sink.write(image, stamps[index])
                    done += 1
                    yield done
            keep = min(min(w.frames) for w in todo) if todo else frame.index + 1
            for index in [i for i in buffer if i < keep]:
                del buffer[index], quants[index]
            runner.flow_cache.forget_before(keep)
    assert not todo and done == chunk.frames, (len(todo), done, chunk.frames)


@dataclass(frozen=True)
class ChunkPlan:
    """One clip cut into chunks: the job, its probe and frame scan, the chunks and the files
    they are written to. Everything a worker elsewhere needs to run one of them. ``shown``: the
    source frames the output shows (all of them, or a span's); the chunks cover exactly these."""

    job: UpscaleJob
    info: VideoInfo
    frames: Scan
    chunks: tuple[Chunk, ...]
    paths: tuple[Path, ...]
    shown: range

    @property
    def total(self) -> int:
        """Frames in the output."""
        return len(self.shown)

    def missing(self) -> list[int]:
        """The chunks no earlier run finished (this host's partials of dead runs removed on the way)."""
        todo = []
        for chunk, path in zip(self.chunks, self.paths):
            remove_stale_partials(path)
            if not path.exists():
                todo.append(chunk.number)
        return todo


def frame_rate(info: VideoInfo, frames: Scan) -> float:
    """Frames per second: the stream's, else measured over the scanned timestamps."""
    if info.rate:
        return float(info.rate)
    span = (frames.times[-1] - frames.times[0]) * info.time_base
    return (frames.frames - 1) / float(span) if span > 0 else 1.0


def plan_clip(model: VSRT, job: UpscaleJob, *, chunks: int | None = None, seconds: float | None = None,
              weights: str | None = None) -> ChunkPlan:
    """Probe and scan ``job``'s input (demux only) and cut it into ``chunks`` chunks, or into
    chunks of about ``seconds`` (one chunk for a clip that short). ``weights``: see :func:`job_key`."""
    check_schedule(model, job.schedule)
    check_restore(model, job.restore)
    if job.source.is_dir() or job.writes_frames:
        raise ConfigError("--chunks needs a video file in and a video file out (not PNG frames)")
    info = probe(job.source)
    if info.interlaced is not None and job.deinterlace != "off":
        raise ConfigError(f"{job.source.name} is interlaced ({info.interlaced}) and chunks are not deinterlaced; "
                          "run it without --chunks (it is deinterlaced then), or with --deinterlace off")
    frames = scan(info)
    shown = shown_range(job.span, frames.times, info.time_base, info.start_time)
    if job.span is not None and not shown:
        raise InputError(f"{job.source}: no frame in the span {job.span.describe()}; is the clip that long?")
    if seconds is not None:
        chunks = chunks_for_seconds(len(shown), frame_rate(info, frames), seconds)
    assert chunks is not None
    plan = plan_chunks(len(shown), chunks, job.schedule.window, job.schedule.stride, first=shown.start)
    key = job_key(model, job, weights)
    return ChunkPlan(job, info, frames, tuple(plan), tuple(chunk_path(job.output, key, c) for c in plan), shown)


def run_planned(model: VSRT, plan: ChunkPlan, number: int) -> Iterator[int]:
    """Chunk ``number`` of ``plan`` on ``plan.job``'s device; yields the frames written so far.
    The unit of work an executor sends to a worker."""
    yield from run_chunk(make_runner(model, plan.job, plan.info), plan.job, plan.info, plan.frames,
                         plan.chunks[number], plan.paths[number])


def finish(plan: ChunkPlan, started: float) -> Iterator[Event]:
    """Stitch the finished chunks into the output, remove them, and yield ``Finished`` (after a
    ``Notice`` for each stream the container could not hold). ``started``: ``perf_counter()``
    when the clip's work began."""
    job, info, first = plan.job, plan.info, plan.shown.start
    times = [plan.frames.times[c.start] * info.time_base for c in plan.chunks]
    cut = None
    if job.span is not None:  # as an unchunked run of the span: its first frame at 0, copies cut alike
        cut = Cut(None if job.span.end is None else info.start_time + job.span.end)
        cut.video(plan.frames.times[first], info.time_base)
        times = [t - times[0] for t in times]
    dropped = stitch(list(plan.paths), job.output, source=job.source, overwrite=job.overwrite, metadata=job.metadata,
                     starts=times, copy_streams=job.encode.copy_streams, cut=cut)
    for line in dropped:
        yield Notice(f"not copied, the output container cannot hold it: {line}")
    # The chunks go only once the output is in place. Removed before the rename, a run killed in
    # between would leave neither (only a temp a rerun cannot trust), and every chunk would be
    # redone. Removed after it, a kill in between leaves a complete output with spent chunks
    # beside it, which a rerun proves spent and removes (remove_spent_chunks): no finished work
    # is ever lost, and the leftovers last only until the next run.
    for path in plan.paths:
        path.unlink(missing_ok=True)
    starts = tuple(c.start - first for c in plan.chunks[1:])  # the record names them: `vsrt eval` scores the seams there
    frame = output_frame(job, info.width, info.height, info.sample_aspect)
    yield Finished(job.output, plan.total, time.perf_counter() - started, job.output.stat().st_size,
                   chunk_starts=starts, width=frame.width, height=frame.height)


def upscale_chunks(model: VSRT, job: UpscaleJob, chunks: int) -> Iterator[Event]:
    """Upscale ``job`` as ``chunks`` chunks (fewer for a shorter clip), one after another here,
    and stitch them; yields the same events as :func:`~vsrt_cli.engine.pipeline.upscale`."""
    if chunks < 1:
        raise ConfigError(f"--chunks {chunks}: must be at least 1")
    if job.source.is_dir() or job.writes_frames:
        raise ConfigError("--chunks needs a video file in and a video file out (not PNG frames)")
    if not job.overwrite and job.output.is_file():
        refuse_input(job.output, job.source)
        spent = remove_spent_chunks(job, job_key(model, job))
        if spent:  # this job's output, complete: a run killed before removing its chunks
            yield Notice(f"{job.output} is already complete; removed {len(spent)} chunk file(s) the run that "
                         "made it left behind (--overwrite redoes it)")
            return
    check_paths(job)
    plan = plan_clip(model, job, chunks=chunks)
    info, total = plan.info, plan.total
    started = time.perf_counter()
    yield Started(job.source, job.output, info.width, info.height, total)
    if info.has_alpha:
        yield Notice("the input has an alpha channel; it is dropped (the output is opaque RGB)")
    runner: TileRunner | None = None
    todo = plan.missing()
    done = sum(c.frames for c in plan.chunks if c.number not in todo)  # finished by an earlier run
    if done:
        yield Progress(done, total)
    for number in todo:
        runner = runner or make_runner(model, job, info)
        base = done
        for count in run_chunk(runner, job, info, plan.frames, plan.chunks[number], plan.paths[number]):
            done = base + count
            yield Progress(done, total)
    yield from finish(plan, started)
