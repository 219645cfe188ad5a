"""reader -> temporal windows -> tiles -> model -> blend -> writer, yielding progress events.

The pipeline never prints: the CLI draws what it yields.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from vsrt_cli.errors import ConfigError, InputError, OutputError
from vsrt_cli.io.background import BackgroundWriter
from vsrt_cli.io.colour import chroma_left
from vsrt_cli.io.interlace import plan as deinterlace_plan
from vsrt_cli.io.frames import FolderWriter, iter_folder, list_frames, read_image
from vsrt_cli.io.outputs import check_output
from vsrt_cli.io.probe import VideoInfo, probe
from vsrt_cli.io.quant import LOSSLESS_CODECS, mean_qp
from vsrt_cli.io.reader import Frame, VideoReader
from vsrt_cli.io.span import Cut, Span, clip_frames
from vsrt_cli.io.writer import EncodeSettings, VideoWriter
from vsrt_cli.model.quant import describe_restore, restore_quant
from vsrt_cli.model.vsrt import SCALE, VSRT
from vsrt_cli.engine.resize import OutputSize, Target, resize, target
from vsrt_cli.engine.runtime import Download, Precision, configure_device, upload_frame
from vsrt_cli.engine.schedule import WindowPlanner, plan_tiles
from vsrt_cli.engine.tiles import FlowCache, TileRunner

__all__ = ["FlowCache", "TileRunner", "Schedule", "UpscaleJob", "upscale"]


@dataclass(frozen=True)
class Schedule:
    """How frames are cut for the model. ``tile`` 0 = whole frame; sizes in LR pixels."""

    tile: int
    overlap: int
    window: int
    stride: int
    batch: int = 1


@dataclass(frozen=True)
class UpscaleJob:
    source: Path
    output: Path
    schedule: Schedule
    device: torch.device
    precision: Precision
    encode: EncodeSettings = field(default_factory=EncodeSettings)
    overwrite: bool = False
    fps: Fraction = Fraction(25)  # for image-folder inputs
    skip_bad_frames: bool = False  # repeat the last good frame where decoding fails
    frames_out: bool | None = None  # PNG frames into a folder; None: when the output has no extension
    metadata: dict[str, str] = field(default_factory=dict)  # container tags (the provenance comment)
    colour_on_device: bool | None = None  # 8-bit 4:2:0 YUV<->RGB on the model's device; None: on CUDA
    size: OutputSize | None = None  # the output size asked for; None: x4 (vsrt_cli.engine.resize)
    restore: float | None = None  # share of a quant_blend model's compression offset; None: from the quantiser
    span: Span | None = None  # only this span of the source (vsrt_cli.io.span); None: all of it
    deinterlace: str = "frame"  # interlaced input: frame, double (one per field) or off (vsrt_cli.io.interlace)

    @property
    def device_colour(self) -> bool:
        """Whether frames cross to the device as YUV planes and are converted there (the
        default on CUDA; on the CPU swscale on the decode/encode threads is faster)."""
        return self.device.type == "cuda" if self.colour_on_device is None else self.colour_on_device

    @property
    def writes_frames(self) -> bool:
        return self.output.suffix == "" if self.frames_out is None else self.frames_out

    @property
    def lossless(self) -> bool:
        """Whether the output keeps the model's frames exactly (PNG frames, a lossless codec, CRF
        0), where vsrt promises the frames of any other run with the same settings (chunked,
        resumed, on another process): the device must then compute deterministically."""
        return self.writes_frames or self.encode.crf == 0 or (self.encode.codec or "") in LOSSLESS_CODECS


# --- events -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Started:
    source: Path
    output: Path
    width: int
    height: int
    total: int | None


@dataclass(frozen=True)
class Progress:
    done: int
    total: int | None


@dataclass(frozen=True)
class Notice:
    message: str
    note: bool = False  # information, not a problem (drawn as "note:", not "warning:")


@dataclass(frozen=True)
class Finished:
    output: Path
    frames: int
    seconds: float
    bytes: int
    repaired: int = 0  # undecodable frames replaced by the previous good one
    chunk_starts: tuple[int, ...] = ()  # first frame of each chunk after the first (--chunks)
    width: int = 0  # of the output frames (0: not said)
    height: int = 0


Event = Started | Progress | Notice | Finished


# --- checks -----------------------------------------------------------------------------------


def check_schedule(model: VSRT, schedule: Schedule) -> None:
    """Refuse, before any work, what the model cannot take; messages name the valid values."""
    config = model.config
    fixed = config.norm == "tile"
    if fixed and schedule.tile != config.tile:
        raise ConfigError(f"--tile {schedule.tile}: this model takes only {config.tile}x{config.tile} LR tiles; use --tile {config.tile}")
    if schedule.tile < 0 or (schedule.tile and schedule.tile % config.size_multiple):
        raise ConfigError(
            f"--tile {schedule.tile}: tiles must be a multiple of {config.size_multiple} LR pixels "
            f"(or 0 for whole frames)"
        )
    if schedule.tile and not 0 <= schedule.overlap < schedule.tile:
        raise ConfigError(f"--tile-overlap {schedule.overlap}: must be 0 to {schedule.tile - 1} (below the tile size)")
    if not 1 <= schedule.window <= config.max_frames:
        raise ConfigError(f"--window {schedule.window}: this model takes 1 to {config.max_frames} frames per call")
    if not 1 <= schedule.stride <= schedule.window:
        raise ConfigError(f"--window-stride {schedule.stride}: must be 1 to {schedule.window} (the window)")
    if schedule.stride == 1 and schedule.window % 2 == 0:
        raise ConfigError(f"--window {schedule.window} with --window-stride 1 needs an odd window (centred frames)")
    if schedule.batch < 1:
        raise ConfigError(f"--batch {schedule.batch}: must be at least 1")


def check_restore(model: VSRT, restore: float | None) -> None:
    """Refuse a ``--restore`` strength the model cannot apply (before any work)."""
    if restore is None:
        return
    if not model.config.quant_blend:
        raise ConfigError(
            f"--restore {restore:g}: this model has no compression offset to blend; use a model that has one "
            "(vsrt-cpu-small-real, vsrt-cpu-small-real-1f) or --restore auto"
        )
    if not 0 <= restore <= 1:
        raise ConfigError(f"--restore {restore:g}: must be auto or a number from 0 (clean) to 1 (all of the offset)")


def window_quant(job: UpscaleJob, quants: list[float | None]) -> float | None:
    """What the model is told about a window's compression: the quantiser of ``--restore``'s
    strength (:func:`~vsrt_cli.model.quant.restore_quant`), else the window's own (``auto``)."""
    return restore_quant(job.restore) if job.restore is not None else mean_qp(quants)


def prepare_runner(runner: TileRunner, model: VSRT, job: UpscaleJob) -> TileRunner:
    """The runner's note on compression says, for a model with the blend, how much of its
    offset it used and why."""
    if model.config.quant_blend:
        runner.describe = lambda quant: describe_restore(job.restore, quant)
    return runner


def output_frame(job: UpscaleJob, width: int, height: int, sample_aspect: Fraction | None) -> Target:
    """The output frame for an input of ``width`` x ``height`` (refused here if the size asked
    cannot be made); even sides for video (4:2:0)."""
    return target(job.size, width, height, Fraction(sample_aspect or 1), even=not job.writes_frames)


def finisher(job: UpscaleJob, frame: Target):
    """``[K, 3, 4H, 4W]`` -> ``[K, 3, height, width]`` of ``frame`` on their device (unchanged for x4)."""
    filter = job.size.filter if job.size is not None else "bicubic"

    def finish(hr: torch.Tensor) -> torch.Tensor:
        return resize(hr, frame.height, frame.width, filter)

    return finish


def check_paths(job: UpscaleJob) -> None:
    """Refuse, before any work, an output that would lose data (see :mod:`vsrt_cli.io.outputs`)
    or cannot be written."""
    check_output(job.output, job.source, overwrite=job.overwrite, folder=job.writes_frames)
    if not job.output.parent.is_dir():
        raise OutputError(f"folder {job.output.parent} does not exist; create it first")
    if not os.access(job.output.parent, os.W_OK):
        raise OutputError(f"cannot write {job.output}: {job.output.parent} is not writable; choose a writable output folder")


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """``[H, W, 3]`` uint8/uint16 -> ``[3, H, W]`` float32 in [0, 1]."""
    return upload_frame(image, torch.device("cpu"))


def to_image(frame: torch.Tensor, deep: bool) -> np.ndarray:
    """``[3, H, W]`` float in [0, 1] -> ``[H, W, 3]`` uint16 (deep) or uint8, rounded."""
    return Download(frame[None], deep).images()[0]


# --- the whole job ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Source:
    width: int
    height: int
    total: int | None
    bit_depth: int
    alpha: bool
    info: VideoInfo | None  # None for image folders; as the reader hands frames over (deinterlaced)
    files: list[Path] | None
    said: str | None = None  # what is done about interlacing


def _open_source(job: UpscaleJob) -> _Source:
    if job.source.is_dir():
        files = list_frames(job.source)
        image, depth, alpha = read_image(files[0])
        total = len(files) if job.span is None else job.span.frames(job.fps, len(files))
        return _Source(image.shape[1], image.shape[0], total, depth, alpha, None, files)
    info, said = deinterlace_plan(probe(job.source), job.deinterlace)  # frames and rate as handed over
    total = info.frames if job.span is None else job.span.frames(info.rate, info.frames)
    return _Source(info.width, info.height, total, info.bit_depth, info.has_alpha, info, None, said)


@contextlib.contextmanager
def _frames(job: UpscaleJob, source: _Source) -> Iterator[tuple[Iterator[Frame], VideoReader | None]]:
    span = job.span
    if source.info is None:
        frames = iter_folder(source.files or [], job.fps)
        yield (frames if span is None else clip_frames(frames, span)), None
        return
    yuv = planes_in(job, source.bit_depth > 8)
    origin = source.info.start_time
    seek = origin + span.start if span is not None and span.start > 0 else None
    with VideoReader(source.info, skip_bad_frames=job.skip_bad_frames, yuv=yuv, seek=seek) as reader:
        yield (iter(reader) if span is None else clip_frames(reader, span, origin)), reader


def upscale(model: VSRT, job: UpscaleJob) -> Iterator[Event]:
    """Upscale ``job.source`` into ``job.output``; yields :data:`Event` s as it goes."""
    check_schedule(model, job.schedule)
    check_restore(model, job.restore)
    check_paths(job)
    source = _open_source(job)
    frame = output_frame(job, source.width, source.height, source.info.sample_aspect if source.info else None)
    if job.writes_frames and source.info is not None and source.info.colour.hdr:
        raise OutputError(
            f"{job.source} is {source.info.colour.describe()}; PNG frames would hold its PQ/HLG codes "
            "untagged and look washed out; write a video (.mkv/.mp4) instead"
        )
    sched = job.schedule
    config = model.config
    grid = plan_tiles(
        source.height, source.width, tile=sched.tile, overlap=sched.overlap if sched.tile else 0,
        multiple=config.size_multiple, fixed=config.norm == "tile",
    )
    device = configure_device(job.device, job.precision, deterministic=job.lossless)
    runner = prepare_runner(TileRunner(model, grid, batch=sched.batch, device=device, precision=job.precision), model, job)
    deep = source.bit_depth > 8
    started = time.perf_counter()
    yield Started(job.source, job.output, source.width, source.height, source.total)
    if source.said:
        yield Notice(source.said, note=source.info is not None and source.info.deinterlace != "off")
    if source.alpha:
        yield Notice("the input has an alpha channel; it is dropped (the output is opaque RGB)")
    if job.size is not None:
        shape = "square pixels" if frame.sample_aspect == 1 else f"pixels {frame.sample_aspect.numerator}:{frame.sample_aspect.denominator}"
        yield Notice(f"{job.size.describe()}: {frame.width}x{frame.height} ({shape}), the model's "
                     f"{source.width * SCALE}x{source.height * SCALE} resized ({job.size.filter}, on {job.device})", note=True)

    if job.writes_frames:
        writer: FolderWriter | VideoWriter = FolderWriter(job.output, overwrite=job.overwrite)
    else:
        info = source.info
        writer = VideoWriter(
            job.output,
            width=frame.width,
            height=frame.height,
            time_base=info.time_base if info else 1 / job.fps,
            rate=(info.rate if info else job.fps),
            bit_depth=source.bit_depth,
            settings=job.encode,
            source=job.source if info else None,
            overwrite=job.overwrite,
            colour=info.colour if info else None,
            sample_aspect=frame.sample_aspect if info else None,
            metadata=job.metadata,
            cut=Cut(None if job.span.end is None else info.start_time + job.span.end) if job.span and info else None,
        )
    with BackgroundWriter(writer) as sink, _frames(job, source) as (frames, reader):
        if isinstance(writer, VideoWriter):
            for dropped in writer.dropped:
                yield Notice(f"not copied, the output container cannot hold it: {dropped}")
        done = 0
        for event in _run(runner, frames, sink, sched, deep, source.total, out_planes(job, writer, deep),
                          finish=finisher(job, frame), told=lambda quants: window_quant(job, quants)):
            if isinstance(event, Progress):
                done = event.done
            yield event
        if done == 0 and job.span is not None:
            raise InputError(f"{job.source}: no frame in the span {job.span.describe()}; is the clip that long?")
        if done == 0:
            raise InputError(f"{job.source}: no frames could be decoded")
        repaired = reader.repaired if reader is not None else 0
    seconds = time.perf_counter() - started
    size = sum(p.stat().st_size for p in job.output.rglob("*")) if job.output.is_dir() else job.output.stat().st_size
    if repaired:
        yield Notice(f"{repaired} frame(s) of {job.source} could not be decoded and repeat the previous good frame")
    yield Finished(job.output, done, seconds, size, repaired, width=frame.width, height=frame.height)


def planes_in(job: UpscaleJob, deep: bool) -> bool:
    """Whether the reader hands 8-bit 4:2:0 frames over as planes for the device to convert."""
    return job.device_colour and not deep


def out_planes(job: UpscaleJob, writer: FolderWriter | VideoWriter, deep: bool) -> tuple[int, bool, bool] | None:
    """``(matrix, full_range, left)`` of the YUV planes the device makes for ``writer`` (chroma
    where its codec's players expect it), or None where it takes RGB (image frames, 10-bit, RGB
    or 4:4:4 output, host conversion)."""
    if not job.device_colour or deep or not isinstance(writer, VideoWriter) or not writer.takes_planes:
        return None
    return writer.colour.matrix, writer.colour.full_range, chroma_left(writer.codec)


def _run(
    runner: TileRunner,
    frames: Iterator[Frame],
    writer: BackgroundWriter,
    sched: Schedule,
    deep: bool,
    total: int | None,
    yuv: tuple[int, bool, bool] | None = None,
    *,
    finish: Callable[[torch.Tensor], torch.Tensor] = lambda hr: hr,
    told: Callable[[list[float | None]], float | None] = mean_qp,
) -> Iterator[Progress | Notice]:
    """Frames are uploaded once each (kept on the device while a window needs them); a window's
    HR frames are quantised on the device (to ``yuv`` planes when given) and downloaded while
    the next window computes, then handed to the writer."""
    planner = WindowPlanner(sched.window, sched.stride)
    buffer: dict[int, torch.Tensor] = {}
    stamps: dict[int, int | None] = {}
    quants: dict[int, float | None] = {}
    pending: list[tuple[Download, list[int]]] = []  # downloads in flight, with their frame indices
    lag = 1 if runner.device.type == "cuda" else 0  # GPU: write the previous window's frames
    done = 0
    available = 0

    def flush(keep: int) -> Iterator[Progress]:
        """Write all but the last ``keep`` downloads (oldest first)."""
        nonlocal done
        while len(pending) > keep:
            download, indices = pending.pop(0)
            for image, index in zip(download.images(), indices):
                writer.write(image, stamps.pop(index))
                done += 1
                yield Progress(done, total)

    def run_windows(eof: bool) -> Iterator[Progress | Notice]:
        for win in planner.ready(available, eof):
            batch = torch.stack([buffer[i] for i in win.frames])
            hr = finish(runner(batch, [pos for pos, _ in win.outputs], win.frames, told([quants[i] for i in win.frames])))
            while runner.notices:
                yield Notice(runner.notices.pop(0))
            while runner.notes:
                yield Notice(runner.notes.pop(0), note=True)
            pending.append((Download(hr, deep, yuv, runner.take_check()), [index for _, index in win.outputs]))
            del batch, hr
            yield from flush(keep=lag)
        for index in [i for i in buffer if i < planner.keep_from]:
            del buffer[index], quants[index]
        runner.flow_cache.forget_before(planner.keep_from)

    try:
        for frame in frames:
            buffer[frame.index] = upload_frame(frame.image, runner.device)
            stamps[frame.index] = frame.pts
            quants[frame.index] = frame.quant
            available = frame.index + 1
            yield from run_windows(eof=False)
        yield from run_windows(eof=True)
        yield from flush(keep=0)
    finally:
        runner.flow_cache.close()  # its look-ahead thread, if it started one
