"""From options to work: the network and the frozen :class:`~vsrt_cli.engine.pipeline.UpscaleJob`
that ``vsrt upscale``'s options (and ``batch``'s and ``preview``'s, which share them) describe,
all checked before any work starts. The CLI only parses flags and calls :func:`build_job`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from vsrt_cli.engine.pipeline import Notice
from vsrt_cli.errors import ConfigError, InputError

if TYPE_CHECKING:
    import torch

    from vsrt_cli.engine.pipeline import UpscaleJob
    from vsrt_cli.model import VSRT
    from vsrt_cli.zoo.registry import InputKind


PRECISIONS = ("auto", "fp32", "fp16", "bf16")


def pick_precision(precision: str, device: "torch.device") -> str:
    if precision != "auto":
        if precision not in PRECISIONS:
            raise ConfigError(f"--precision {precision}: use one of {', '.join(PRECISIONS)}")
        return precision
    from vsrt_cli.engine.runtime import default_precision

    return default_precision(device)


@dataclass(frozen=True)
class DeviceChoice:
    """What the flags ask of the device-dependent settings: ``auto`` precision and ``None``
    tiles or batch are left to vsrt, which resolves them for one card (:func:`for_device`): the
    driver for a run here, each Ray worker for its own card (the driver needs no GPU)."""

    precision: str = "auto"
    tile: int | None = None
    batch: int | None = None


def for_device(net: "VSRT", job: "UpscaleJob", device: "torch.device", choice: DeviceChoice) -> "UpscaleJob":
    """``job`` on ``device`` (with its index), with the precision and tiling ``choice`` leaves to
    vsrt resolved for that card: its compute capability, its free memory now (``net`` already
    there), for clips of any size."""
    schedule = job.schedule
    precision = pick_precision(choice.precision, device)
    tile, batch = _tiling(net, device, precision, window=schedule.window, stride=schedule.stride, tile=choice.tile,
                          batch=choice.batch, overlap=schedule.overlap, source=None, say=None)
    return replace(job, device=device, precision=precision, schedule=replace(schedule, tile=tile, batch=batch))


def load_model(model_name: str | None, weights: Path | None, kind: "InputKind" = "frames") -> "VSRT":
    """The network for ``--model``/``--weights``: a given file (vsrt's format or the authors'
    checkpoint for an official preset), else the named model's (or the default for ``kind`` of
    input) hash-checked weights."""
    from vsrt_cli.zoo.download import verify
    from vsrt_cli.zoo.registry import default_name, get_entry, require_path
    from vsrt_cli.zoo.weights import load_weights

    name = model_name or default_name(kind)
    entry = get_entry(name) if name is not None else None
    if weights is not None:
        return load_weights(weights, preset=entry.preset if entry is not None and entry.official_format else None)
    if entry is None:
        raise ConfigError("this build bundles no weights; pass --weights PATH (a vsrt weights file or the authors' checkpoint)")
    path = require_path(entry)
    sidecar = path.with_name(path.name + ".sha256")
    verify(path, entry.sha256 or (sidecar.read_text().strip() if sidecar.is_file() else None))
    return load_weights(path, preset=entry.preset if entry.official_format else None)


def build_job(
    *, source: Path, output: Path, model: str | None, weights: Path | None, device: str, precision: str,
    tile: int | None, tile_overlap: int | None, window: int | None, window_stride: int | None, batch: int | None,
    codec: str | None, crf: int, preset: str, pix_fmt: str | None, fps: str, no_audio: bool,
    overwrite: bool, skip_bad_frames: bool, quiet: bool = False, kind: "InputKind | None" = None,
    one_clip: bool = True, say: Callable[[Notice], None] = lambda notice: None, deinterlace: str = "frame",
    scale: float | None = None, width: int | None = None, height: int | None = None, size: str | None = None,
    stretch: bool = False, resize_filter: str = "bicubic", restore: str | float | None = "auto",
    start: str | float | None = None, duration: str | float | None = None, end: str | float | None = None,
) -> "tuple[VSRT, UpscaleJob]":
    """The network and the job the options describe (checked before any work). ``kind``: the
    input the default model is chosen for (default: what ``source`` is). ``one_clip``: ``source``
    is one clip or frame folder, whose frame size the default tiles may be sized for. ``say``
    receives what the choices are worth telling the user (a shorter window, the tiling chosen).
    ``scale``/``width``/``height``/``size``/``stretch``/``resize_filter``: the output size
    (:mod:`vsrt_cli.engine.resize`); ``restore``: ``auto`` or 0..1; ``start`` with ``duration``
    or ``end``: a span (:mod:`vsrt_cli.io.span`)."""
    from fractions import Fraction

    from vsrt_cli.engine.resize import OutputSize
    from vsrt_cli.io.span import Span

    from vsrt_cli.io.writer import EncodeSettings
    from vsrt_cli.engine.pipeline import Schedule, UpscaleJob
    from vsrt_cli.engine.runtime import resolve_device, tune_allocator

    from vsrt_cli.io.interlace import MODES

    if deinterlace not in MODES:
        raise ConfigError(f"--deinterlace {deinterlace}: use one of {', '.join(MODES)}")
    tune_allocator()  # freed model memory stays in the process (a fifth of the CPU time was page faults)
    dev = resolve_device(device)
    prec = pick_precision(precision, dev)
    try:
        rate = Fraction(fps)
    except (ValueError, ZeroDivisionError):
        raise ConfigError(f"--fps {fps}: give a number such as 25 or 30000/1001") from None
    if rate <= 0:
        raise ConfigError(f"--fps {fps}: must be positive")
    wanted = OutputSize.parse(scale=scale, width=width, height=height, size=size, stretch=stretch, filter=resize_filter)
    strength = parse_restore(restore)
    span = Span.parse(start, duration, end)
    if not source.exists():
        raise InputError(f"{source}: no such file or folder; check the path")
    from vsrt_cli.zoo.registry import input_kind

    net = load_model(model, weights, kind or input_kind(source)).to(dev)
    from vsrt_cli.engine.pipeline import check_restore

    check_restore(net, strength)
    cfg = net.config
    win = window if window is not None else cfg.num_frame
    if win > cfg.num_frame:  # the positional encoding has channels for more, never trained
        raise ConfigError(
            f"--window {win}: this model was trained on {cfg.num_frame}-frame windows and never saw more frames "
            f"per call; use --window {cfg.num_frame} or fewer"
        )
    if win < cfg.num_frame and not quiet:
        say(Notice(f"--window {win}: this model was trained on {cfg.num_frame}-frame windows; "
                   "fewer frames per call give it less context than it learned with"))
    stride = window_stride if window_stride is not None else cfg.default_stride(win)
    tile_overlap = tile_overlap if tile_overlap is not None else cfg.default_overlap
    tile, batch = _tiling(net, dev, prec, window=win, stride=stride, tile=tile, batch=batch, overlap=tile_overlap,
                          source=source if one_clip else None, say=None if quiet else say)
    schedule = Schedule(tile=tile, overlap=tile_overlap, window=win, stride=stride, batch=batch)
    job = UpscaleJob(
        source=source,
        output=output,
        schedule=schedule,
        device=dev,
        precision=prec,
        encode=EncodeSettings(codec=codec, crf=crf, preset=preset, pix_fmt=pix_fmt, copy_streams=not no_audio),
        overwrite=overwrite,
        fps=rate,
        skip_bad_frames=skip_bad_frames,
        size=wanted,
        restore=strength,
        span=span,
        deinterlace=deinterlace,
    )
    return net, job


def parse_restore(restore: str | float | None) -> float | None:
    """``--restore``: ``auto`` (or None) -> None; a number from 0 to 1 -> itself."""
    if restore is None or (isinstance(restore, str) and restore.strip().lower() == "auto"):
        return None
    try:
        value = float(restore)
    except ValueError:
        raise ConfigError(f"--restore {restore}: give auto or a number from 0 (clean) to 1 (all of the compression offset)") from None
    if not 0 <= value <= 1:
        raise ConfigError(f"--restore {restore}: must be from 0 (the clean model) to 1 (all of the compression offset), or auto")
    return value


def _tiling(
    net: "VSRT", dev: "torch.device", precision: str, *, window: int, stride: int, tile: int | None,
    batch: int | None, overlap: int, source: Path | None, say: Callable[[Notice], None] | None,
) -> tuple[int, int]:
    """``--tile`` and ``--batch`` where given; the rest: on CUDA, what fits in the card's free
    memory now (:func:`~vsrt_cli.engine.budget.default_tiling`, said once); on the CPU, 128 px (the
    model's own tile for fixed-tile models) and 4 tiles per call. The out-of-memory back-off in
    :mod:`vsrt_cli.engine.tiles` stays the safety net. ``source`` None: clips of several sizes."""
    from vsrt_cli.engine import runtime
    from vsrt_cli.engine.budget import tiling_for
    from vsrt_cli.io.frames import frame_size

    if tile is not None and batch is not None:
        return tile, batch
    size = frame_size(source) if source is not None and runtime.free_memory(dev) is not None else None  # a probe: only where used
    chosen, free = tiling_for(net.config, dev, precision, window=window, stride=stride, overlap=overlap,
                              size=size, tile=tile, batch=batch)
    tile, batch = chosen.tile, chosen.batch
    if free is not None and say is not None:
        side = "whole frames" if tile == 0 else f"{tile}x{tile} tiles"
        say(Notice(f"tiling: {side}, {batch} per call (sized for {free / 2**30:.1f} GiB free on {dev}; "
                   "--tile/--batch to choose)", note=True))
    return tile, batch
