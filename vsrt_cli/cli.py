"""The ``vsrt`` command line: flags become frozen configs; VsrtError becomes one red line.

Only this module prints. Work functions elsewhere return values or yield progress events.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from vsrt_cli import __version__
from vsrt_cli.errors import ConfigError, InputError, VsrtError

if TYPE_CHECKING:
    import torch

    from vsrt_cli.model import VSRT

app = typer.Typer(
    name="vsrt",
    help="x4 video super-resolution with the Video Super-Resolution Transformer (VSRT).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
models_app = typer.Typer(help="Model presets and their weights.", no_args_is_help=True)
app.add_typer(models_app, name="models")

out = Console()
err = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        out.print(f"vsrt {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """x4 video super-resolution with the Video Super-Resolution Transformer (VSRT)."""


@models_app.command("list")
def models_list() -> None:
    """List the model presets."""
    import torch

    from vsrt_cli.model import PRESETS, build_model

    table = Table("name", "frames", "depth", "channels", "LR size", "parameters")
    for name, config in PRESETS.items():
        with torch.device("meta"):
            n_params = sum(p.numel() for p in build_model(config).parameters())
        size = f"{config.tile}x{config.tile}" if config.norm == "tile" else f"multiple of {config.size_multiple}"
        table.add_row(name, str(config.num_frame), str(config.depth), str(config.num_feat), size, f"{n_params:,}")
    out.print(table)


PRECISIONS = ("auto", "fp32", "fp16", "bf16")


def _pick_precision(precision: str, device: "torch.device") -> str:
    if precision != "auto":
        if precision not in PRECISIONS:
            raise ConfigError(f"--precision {precision}: use one of {', '.join(PRECISIONS)}")
        return precision
    import torch

    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "fp32"


def _load_model(model_name: str | None, weights: Path | None) -> "VSRT":
    from vsrt_cli.model import get_config
    from vsrt_cli.weights import load_weights

    if model_name is not None:
        get_config(model_name)  # unknown names raise and list the valid ones
    if weights is None:
        raise ConfigError(
            f"no weights for {model_name or 'the default model'}: this build bundles none yet; "
            "pass --weights PATH (a vsrt weights file or the authors' checkpoint)"
        )
    return load_weights(weights, preset=model_name)


@app.command()
def upscale(
    input: Annotated[Path, typer.Argument(help="A video file, or a folder of PNG/JPEG frames.", show_default=False)],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output video (container from its extension) or a folder for PNG frames.", show_default=False)],
    model: Annotated[Optional[str], typer.Option(help="Model preset name (see `vsrt models list`).")] = None,
    weights: Annotated[Optional[Path], typer.Option(help="Weights file: vsrt's own or the authors' checkpoint.")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    precision: Annotated[str, typer.Option(help="auto, fp32, fp16 or bf16 (auto: bf16/fp16 on CUDA, fp32 on CPU).")] = "auto",
    tile: Annotated[Optional[int], typer.Option(help="LR tile size in pixels; 0 = whole frame where the model allows it. Larger tiles: more context, more memory.")] = None,
    tile_overlap: Annotated[int, typer.Option(help="LR pixels shared by neighbouring tiles, blended smoothly. More overlap: fewer seam artefacts, more compute.")] = 16,
    window: Annotated[Optional[int], typer.Option(help="Frames per model call (default: the model's).")] = None,
    window_stride: Annotated[Optional[int], typer.Option(help="Frames between model calls. 1 = each frame from the window centred on it (best, slowest); = window = every frame of a call kept (fastest).")] = None,
    batch: Annotated[int, typer.Option(help="Tiles per model call.")] = 4,
    codec: Annotated[Optional[str], typer.Option(help="Video encoder: libx264, libx265, libvpx-vp9, ffv1, ... (default: libx264; libvpx-vp9 for .webm).")] = None,
    crf: Annotated[int, typer.Option(help="Encoder quality (lower = better; 16 is visually lossless for x264).")] = 16,
    preset: Annotated[str, typer.Option(help="Encoder speed preset (x264/x265).")] = "medium",
    pix_fmt: Annotated[Optional[str], typer.Option(help="Output pixel format (default: 4:2:0 at the input's bit depth).")] = None,
    fps: Annotated[str, typer.Option(help="Frame rate for image-folder inputs.")] = "25",
    no_audio: Annotated[bool, typer.Option("--no-audio", help="Do not copy audio and subtitle streams.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing output.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
) -> None:
    """Upscale a video (or a folder of frames) x4."""
    from fractions import Fraction

    from vsrt_cli.io.writer import EncodeSettings
    from vsrt_cli.pipeline import Schedule, UpscaleJob, upscale as run_upscale
    from vsrt_cli.runtime import resolve_device

    dev = resolve_device(device)
    prec = _pick_precision(precision, dev)
    try:
        rate = Fraction(fps)
    except (ValueError, ZeroDivisionError):
        raise ConfigError(f"--fps {fps}: give a number such as 25 or 30000/1001") from None
    if rate <= 0:
        raise ConfigError(f"--fps {fps}: must be positive")
    if not input.exists():
        raise InputError(f"{input}: no such file or folder; check the path")
    net = _load_model(model, weights).to(dev)
    cfg = net.config
    win = window if window is not None else cfg.num_frame
    schedule = Schedule(
        tile=tile if tile is not None else (cfg.tile if cfg.norm == "tile" else 128),
        overlap=tile_overlap,
        window=win,
        stride=window_stride if window_stride is not None else max(1, win - 2),
        batch=batch,
    )
    job = UpscaleJob(
        source=input,
        output=output,
        schedule=schedule,
        device=dev,
        precision=prec,
        encode=EncodeSettings(codec=codec, crf=crf, preset=preset, pix_fmt=pix_fmt, copy_streams=not no_audio),
        overwrite=overwrite,
        fps=rate,
    )
    from vsrt_cli.progress import render

    try:
        render(run_upscale(net, job), err, quiet=quiet)
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/]: the partial output was removed")
        raise typer.Exit(130) from None


def main(argv: list[str] | None = None) -> None:
    """Entry point: runs the app, turning :class:`VsrtError` into one line and an exit code.

    Usage errors, ``--help`` and ``--version`` are handled by Typer itself (standalone mode).
    ``--debug`` anywhere on the command line lets the traceback through instead.
    """
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        app(args=args, prog_name="vsrt")
    except VsrtError as exc:
        if debug:
            raise
        err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except Exception as exc:  # anything unforeseen: still one line, unless --debug
        if debug:
            raise
        err.print(
            f"[bold red]internal error:[/] {type(exc).__name__}: {exc} "
            "(rerun with --debug for the traceback, and please report it)",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(70)
