"""From options to work: the network and the frozen :class:`~vsrt_cli.engine.pipeline.UpscaleJob`
that ``vsrt upscale``'s options (and ``batch``'s and ``preview``'s, which share them) describe,
all checked before any work starts. The CLI only parses flags and calls :func:`build_job`."""

from __future__ import annotations

from collections.abc import Callable
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
    tile: int | None, tile_overlap: int, window: int | None, window_stride: int | None, batch: int | None,
    codec: str | None, crf: int, preset: str, pix_fmt: str | None, fps: str, no_audio: bool,
    overwrite: bool, skip_bad_frames: bool, quiet: bool = False, kind: "InputKind | None" = None,
    one_clip: bool = True, say: Callable[[Notice], None] = lambda notice: None, deinterlace: str = "frame",
) -> "tuple[VSRT, UpscaleJob]":
    """The network and the job the options describe (checked before any work). ``kind``: the
    input the default model is chosen for (default: what ``source`` is). ``one_clip``: ``source``
    is one clip or frame folder, whose frame size the default tiles may be sized for. ``say``
    receives what the choices are worth telling the user (a shorter window, the tiling chosen)."""
    from fractions import Fraction

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
    if not source.exists():
        raise InputError(f"{source}: no such file or folder; check the path")
    from vsrt_cli.zoo.registry import input_kind

    net = load_model(model, weights, kind or input_kind(source)).to(dev)
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
        deinterlace=deinterlace,
    )
    return net, job


def _tiling(
    net: "VSRT", dev: "torch.device", precision: str, *, window: int, stride: int, tile: int | None,
    batch: int | None, overlap: int, source: Path | None, say: Callable[[Notice], None] | None,
) -> tuple[int, int]:
    """``--tile`` and ``--batch`` where given; the rest: on CUDA, what fits in the card's free
    memory now (:func:`~vsrt_cli.engine.budget.default_tiling`, said once); on the CPU, 128 px (the
    model's own tile for fixed-tile models) and 4 tiles per call. The out-of-memory back-off in
    :mod:`vsrt_cli.engine.tiles` stays the safety net. ``source`` None: clips of several sizes."""
    from vsrt_cli.engine.budget import default_tiling
    from vsrt_cli.io.frames import frame_size
    from vsrt_cli.engine.runtime import free_memory

    if tile is not None and batch is not None:
        return tile, batch
    free = free_memory(dev)
    chosen = default_tiling(
        net.config, frames=window, kept=1 if stride == 1 else window,  # a clip's end keeps the whole window
        size=frame_size(source) if free is not None and source is not None else None,
        element_bytes=4 if precision == "fp32" else 2, free_bytes=free, overlap=overlap, tile=tile,
    )
    tile, batch = chosen.tile if tile is None else tile, chosen.batch if batch is None else batch
    if free is not None and say is not None:
        side = "whole frames" if tile == 0 else f"{tile}x{tile} tiles"
        say(Notice(f"tiling: {side}, {batch} per call (sized for {free / 2**30:.1f} GiB free on {dev}; "
                   "--tile/--batch to choose)", note=True))
    return tile, batch
