"""reader -> temporal windows -> tiles -> model -> blend -> writer, yielding progress events.

The pipeline never prints: the CLI draws what it yields.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vsrt_cli.errors import ConfigError, InputError, OutputError, ResourceError
from vsrt_cli.io.background import BackgroundWriter
from vsrt_cli.io.frames import FolderWriter, iter_folder, list_frames, read_image
from vsrt_cli.io.outputs import check_output
from vsrt_cli.io.probe import VideoInfo, probe
from vsrt_cli.io.reader import Frame, VideoReader
from vsrt_cli.io.writer import EncodeSettings, VideoWriter
from vsrt_cli.model.spynet import neighbours
from vsrt_cli.model.vsrt import SCALE, VSRT
from vsrt_cli.runtime import (
    MIN_TILE,
    Download,
    Precision,
    autocast,
    channels_last_wins,
    configure_device,
    is_out_of_memory,
    release_memory,
    upload_frame,
)
from vsrt_cli.schedule import TileGrid, WindowPlanner, normalised_weights, plan_tiles, smaller_tile


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

    @property
    def writes_frames(self) -> bool:
        return self.output.suffix == "" if self.frames_out is None else self.frames_out


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


@dataclass(frozen=True)
class Finished:
    output: Path
    frames: int
    seconds: float
    bytes: int
    repaired: int = 0  # undecodable frames replaced by the previous good one


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


def check_paths(job: UpscaleJob) -> None:
    """Refuse, before any work, an output that would lose data (see :mod:`vsrt_cli.io.outputs`)
    or cannot be written."""
    check_output(job.output, job.source, overwrite=job.overwrite, folder=job.writes_frames)
    if not job.output.parent.is_dir():
        raise OutputError(f"folder {job.output.parent} does not exist; create it first")
    if not os.access(job.output.parent, os.W_OK):
        raise OutputError(f"cannot write {job.output}: {job.output.parent} is not writable; choose a writable output folder")


# --- the model over one window ------------------------------------------------------------------


class FlowCache:
    """SPyNet flows between source frames, computed once per frame pair on whole (padded) frames
    and reused by every window and tile that needs them."""

    def __init__(self, model: VSRT, chunk: int = 4) -> None:
        self.model = model
        self.chunk = chunk
        self.flows: dict[tuple[int, int], torch.Tensor] = {}

    def window(self, frames: torch.Tensor, indices: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        """``frames`` ``[T, 3, H, W]`` holding source frames ``indices`` -> ``(to_prev, to_next)``
        ``[1, T, 2, H, W]``, as :func:`~vsrt_cli.model.spynet.window_flows` computes them."""
        t, _, h, w = frames.shape
        if not self.model.config.use_flow:
            zeros = frames.new_zeros(1, t, 2, h, w)
            return zeros, zeros
        prev, nxt = neighbours(t)
        position = {index: j for j, index in enumerate(indices)}
        wanted = [(indices[j], indices[k]) for j, k in zip(range(t), prev)]
        wanted += [(indices[j], indices[k]) for j, k in zip(range(t), nxt)]
        missing = [pair for pair in dict.fromkeys(wanted) if pair not in self.flows]
        for start in range(0, len(missing), self.chunk):
            pairs = missing[start : start + self.chunk]
            ref = torch.stack([frames[position[a]] for a, _ in pairs])
            supp = torch.stack([frames[position[b]] for _, b in pairs])
            for pair, flow in zip(pairs, self.model.spynet(ref, supp)):
                self.flows[pair] = flow
        stacked = torch.stack([self.flows[pair] for pair in wanted]).unsqueeze(0)
        return stacked[:, :t], stacked[:, t:]

    def forget_before(self, first: int) -> None:
        """Drop flows whose reference frame is before ``first`` (no window needs them again)."""
        for pair in [p for p in self.flows if p[0] < first]:
            del self.flows[pair]


class TileRunner:
    """Runs the model over the tiles of one window and blends the HR tiles back together.

    The model is switched to channels-last weights where that is faster (see
    :func:`~vsrt_cli.runtime.channels_last_wins`), and asked only for the kept frames.

    Out of memory (torch's ``OutOfMemoryError``, or cuDNN/cuBLAS allocation failures), it frees
    the failed call's memory and retries the same window using less, one step at a time: fewer
    tiles per call; fewer frame pairs per flow call, then flows per tile instead of on whole
    frames; the blend accumulator on the host instead of the device; then tiles of about half
    the side, never below :data:`~vsrt_cli.runtime.MIN_TILE`. Each change is said once in
    :attr:`notices`; no frame is ever dropped.
    """

    def __init__(self, model: VSRT, grid: TileGrid, *, batch: int, device: torch.device, precision: Precision) -> None:
        self.model = model
        self.batch = batch
        self.device = device
        self.precision = precision
        self.flow_cache = FlowCache(model)
        self.whole_frame_flows = True
        self.accumulate_on = device
        self.notices: list[str] = []
        self._stage = "tiles"
        self._takes_keep = "keep" in inspect.signature(model.forward if isinstance(model, torch.nn.Module) else model).parameters
        if isinstance(model, torch.nn.Module) and channels_last_wins(device):
            model.to(memory_format=torch.channels_last)
        self.set_grid(grid)

    def set_grid(self, grid: TileGrid) -> None:
        self.grid = grid
        self.weights = [torch.from_numpy(w).to(self.device) for w in normalised_weights(grid, SCALE)]
        self.flow_cache.flows.clear()  # computed on frames padded for the old grid

    def shrink(self, stage: str) -> bool:
        """Use less memory where ``stage`` (``flows``, ``tiles`` or ``accumulator``) failed.
        False if nothing is left to try."""
        def say(what: str) -> bool:
            self.notices.append(f"out of memory: retrying with {what}")
            return True

        if stage == "flows":
            if self.flow_cache.chunk > 1:
                old, self.flow_cache.chunk = self.flow_cache.chunk, max(1, self.flow_cache.chunk // 2)
                return say(f"{self.flow_cache.chunk} frame pair(s) per flow call (was {old})")
            if self.whole_frame_flows:
                self.whole_frame_flows = False
                self.flow_cache.flows.clear()
                return say("flows computed per tile (was on whole frames)")
            return False
        if stage == "tiles" and self.batch > 1:
            old, self.batch = self.batch, max(1, self.batch // 2)
            return say(f"{self.batch} tile(s) per call (was {old})")
        if self.accumulate_on.type != "cpu":
            self.accumulate_on = torch.device("cpu")
            self.weights = [w.cpu() for w in self.weights]
            return say("the tiles blended in host memory (was on the device)")
        if stage != "tiles":
            return False
        config, grid = self.model.config, self.grid
        smaller = smaller_tile(max(grid.tile), grid.height, grid.width, multiple=config.size_multiple,
                               fixed=config.norm == "tile", minimum=MIN_TILE)
        if smaller is None:
            return False
        overlap = min(grid.overlap or 16, smaller // 4)  # a whole-frame grid had none: seams need some
        self.set_grid(plan_tiles(grid.height, grid.width, tile=smaller, overlap=overlap, multiple=config.size_multiple))
        if self.accumulate_on.type == "cpu":
            self.weights = [w.cpu() for w in self.weights]
        return say(f"{smaller}x{smaller} tiles, overlap {overlap} (was {max(grid.tile)})")

    def __call__(self, frames: torch.Tensor, positions: list[int], indices: tuple[int, ...] | None = None) -> torch.Tensor:
        """``frames`` ``[T, 3, H, W]`` float in [0,1] -> HR ``[len(positions), 3, 4H, 4W]`` in [0,1]
        (on the device, or on the host once the accumulator has moved there).

        ``indices`` name the source frames so their flows are cached across windows."""
        while True:
            try:
                return self._window(frames, positions, indices)
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            # Outside the except block: the traceback, which held the failed call's tensors, is gone.
            release_memory(self.device)
            if not self.shrink(self._stage):
                tile = max(self.grid.tile)
                raise ResourceError(
                    f"out of {self.device.type.upper()} memory even with one {tile}x{tile} tile per call "
                    f"({reason}); free memory, use a smaller model or --device cpu"
                )

    def pad(self, frames: torch.Tensor) -> torch.Tensor:
        """``[T, 3, H, W]`` -> ``[T, 3, Hp, Wp]``, mirrored where the frame is big enough."""
        ph, pw = self.grid.padded[0] - frames.shape[-2], self.grid.padded[1] - frames.shape[-1]
        if ph == 0 and pw == 0:
            return frames
        mode = "reflect" if ph < frames.shape[-2] and pw < frames.shape[-1] else "replicate"
        return F.pad(frames, (0, pw, 0, ph), mode=mode)

    def _call(self, tiles: torch.Tensor, flows: tuple[torch.Tensor, ...] | None, positions: list[int]) -> torch.Tensor:
        if self._takes_keep:
            return self.model(tiles, flows, keep=positions)
        return self.model(tiles, flows)[:, positions]

    @torch.inference_mode()
    def _window(self, frames: torch.Tensor, positions: list[int], indices: tuple[int, ...] | None) -> torch.Tensor:
        h, w = frames.shape[-2:]
        padded = self.pad(frames.to(self.device))
        th, tw = self.grid.tile
        self._stage = "accumulator"
        out = torch.zeros(len(positions), 3, self.grid.padded[0] * SCALE, self.grid.padded[1] * SCALE, device=self.accumulate_on)
        origins = self.grid.origins
        if indices is None:  # no cache: number the window's frames afresh
            self.flow_cache.flows.clear()
            indices = tuple(range(len(frames)))
        flows = None
        if self.whole_frame_flows:
            self._stage = "flows"
            with autocast(self.device, self.precision):
                # Flows on the whole (padded) frames, then cropped per tile: more context for SPyNet
                # and no repeated work in tile overlaps or overlapping windows.
                flows = self.flow_cache.window(padded, indices)
        self._stage = "tiles"
        for start in range(0, len(origins), self.batch):
            chunk = origins[start : start + self.batch]
            tiles = torch.stack([padded[:, :, y : y + th, x : x + tw] for y, x in chunk])
            tile_flows = None if flows is None else tuple(
                torch.cat([f[:, :, :, y : y + th, x : x + tw] for y, x in chunk]) for f in flows
            )
            with autocast(self.device, self.precision):
                hr = self._call(tiles, tile_flows, positions).float().to(self.accumulate_on)
            for i, (y, x) in enumerate(chunk):
                region = out[:, :, y * SCALE : (y + th) * SCALE, x * SCALE : (x + tw) * SCALE]
                region += hr[i] * self.weights[start + i]
        return out[:, :, : h * SCALE, : w * SCALE].clamp_(0, 1)


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
    info: VideoInfo | None  # None for image folders
    files: list[Path] | None


def _open_source(job: UpscaleJob) -> _Source:
    if job.source.is_dir():
        files = list_frames(job.source)
        image, depth, alpha = read_image(files[0])
        return _Source(image.shape[1], image.shape[0], len(files), depth, alpha, None, files)
    info = probe(job.source)
    return _Source(info.width, info.height, info.frames, info.bit_depth, info.has_alpha, info, None)


@contextlib.contextmanager
def _frames(job: UpscaleJob, source: _Source) -> Iterator[tuple[Iterator[Frame], VideoReader | None]]:
    if source.info is None:
        yield iter_folder(source.files or [], job.fps), None
        return
    with VideoReader(source.info, skip_bad_frames=job.skip_bad_frames) as reader:
        yield iter(reader), reader


def upscale(model: VSRT, job: UpscaleJob) -> Iterator[Event]:
    """Upscale ``job.source`` into ``job.output``; yields :data:`Event` s as it goes."""
    check_schedule(model, job.schedule)
    check_paths(job)
    source = _open_source(job)
    sched = job.schedule
    config = model.config
    grid = plan_tiles(
        source.height, source.width, tile=sched.tile, overlap=sched.overlap if sched.tile else 0,
        multiple=config.size_multiple, fixed=config.norm == "tile",
    )
    configure_device(job.device, job.precision)
    runner = TileRunner(model, grid, batch=sched.batch, device=job.device, precision=job.precision)
    deep = source.bit_depth > 8
    started = time.perf_counter()
    yield Started(job.source, job.output, source.width, source.height, source.total)
    if source.alpha:
        yield Notice("the input has an alpha channel; it is dropped (the output is opaque RGB)")

    if job.writes_frames:
        writer: FolderWriter | VideoWriter = FolderWriter(job.output, overwrite=job.overwrite)
    else:
        info = source.info
        writer = VideoWriter(
            job.output,
            width=source.width * SCALE,
            height=source.height * SCALE,
            time_base=info.time_base if info else 1 / job.fps,
            rate=(info.rate if info else job.fps),
            bit_depth=source.bit_depth,
            settings=job.encode,
            source=job.source if info else None,
            overwrite=job.overwrite,
        )
    with BackgroundWriter(writer) as sink, _frames(job, source) as (frames, reader):
        if isinstance(writer, VideoWriter):
            for dropped in writer.dropped:
                yield Notice(f"not copied, the output container cannot hold it: {dropped}")
        done = 0
        for event in _run(runner, frames, sink, sched, deep, source.total):
            if isinstance(event, Progress):
                done = event.done
            yield event
        if done == 0:
            raise InputError(f"{job.source}: no frames could be decoded")
        repaired = reader.repaired if reader is not None else 0
    seconds = time.perf_counter() - started
    size = sum(p.stat().st_size for p in job.output.rglob("*")) if job.output.is_dir() else job.output.stat().st_size
    if repaired:
        yield Notice(f"{repaired} frame(s) of {job.source} could not be decoded and repeat the previous good frame")
    yield Finished(job.output, done, seconds, size, repaired)


def _run(
    runner: TileRunner,
    frames: Iterator[Frame],
    writer: BackgroundWriter,
    sched: Schedule,
    deep: bool,
    total: int | None,
) -> Iterator[Progress | Notice]:
    """Frames are uploaded once each (kept on the device while a window needs them); a window's
    HR frames are quantised on the device and downloaded while the next window computes, then
    handed to the writer."""
    planner = WindowPlanner(sched.window, sched.stride)
    buffer: dict[int, torch.Tensor] = {}
    stamps: dict[int, int | None] = {}
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
            hr = runner(batch, [pos for pos, _ in win.outputs], win.frames)
            while runner.notices:
                yield Notice(runner.notices.pop(0))
            pending.append((Download(hr, deep), [index for _, index in win.outputs]))
            del batch, hr
            yield from flush(keep=lag)
        for index in [i for i in buffer if i < planner.keep_from]:
            del buffer[index]
        runner.flow_cache.forget_before(planner.keep_from)

    for frame in frames:
        buffer[frame.index] = upload_frame(frame.image, runner.device)
        stamps[frame.index] = frame.pts
        available = frame.index + 1
        yield from run_windows(eof=False)
    yield from run_windows(eof=True)
    yield from flush(keep=0)
