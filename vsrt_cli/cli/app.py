"""The ``vsrt`` command line: flags become frozen configs; VsrtError becomes one red line.

Only this module prints. Work functions elsewhere return values or yield progress events.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.console import Console

from vsrt_cli import __version__
from vsrt_cli.errors import ConfigError, InputError, VsrtError
from vsrt_cli.cli.models import models_app
from vsrt_cli.cli.tools import register as register_tools

if TYPE_CHECKING:
    import torch

    from vsrt_cli.model import VSRT
    from vsrt_cli.engine.pipeline import Notice, UpscaleJob
    from vsrt_cli.zoo.registry import InputKind

app = typer.Typer(
    name="vsrt",
    help="x4 video super-resolution with the Video Super-Resolution Transformer (VSRT).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

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


# Options shared by `upscale` and `batch` (one definition each, so the two stay in step).
ModelOpt = Annotated[Optional[str], typer.Option(help="Model name (see `vsrt models list`); default: the bundled model.")]
WeightsOpt = Annotated[Optional[Path], typer.Option(help="Weights file: vsrt's own or the authors' checkpoint.")]
DeviceOpt = Annotated[str, typer.Option(help="auto (the current CUDA GPU if there is one, else the CPU), cpu, cuda or cuda:N (N from 0). Apple GPUs (mps) are not supported.")]
PrecisionOpt = Annotated[str, typer.Option(help="auto, fp32, fp16 or bf16 (auto: bf16 on CUDA GPUs of compute capability 8.0 or newer, fp16 on older ones; bf16 on CPUs with native bf16 such as AMX, else fp32).")]
TileOpt = Annotated[Optional[int], typer.Option(help="LR tile size in pixels; 0 = whole frame where the model allows it. Larger tiles: more context, more memory. Default: 128 on the CPU; on a CUDA GPU the largest that fits in its free memory (the whole frame if it does); fixed-tile models: their tile.")]
OverlapOpt = Annotated[Optional[int], typer.Option(help="LR pixels shared by neighbouring tiles, blended smoothly. More overlap: fewer seam artefacts, more compute. Default: 8 (16 for the authors' fixed-tile models).", show_default=False)]
WindowOpt = Annotated[Optional[int], typer.Option(help="Frames per model call (default: the model's trained window; more is refused, fewer is allowed with a warning).")]
StrideOpt = Annotated[Optional[int], typer.Option(help="Frames between model calls. 1 = each frame from the window centred on it (best, slowest); = window = every frame of a call kept (fastest). Default: window - 2, or 1 for models that compute each frame in a pass of its own.")]
BatchOpt = Annotated[Optional[int], typer.Option(help="Tiles per model call (default: 4 on the CPU; on a CUDA GPU as many as fit in its free memory).")]
_CODEC_DEFAULTS = "default: libx264; libvpx-vp9 for .webm; HDR input: libx265, libsvtav1 for .webm"
_CODEC = typer.Option(help=f"Video encoder ({_CODEC_DEFAULTS}); `--help` lists those this PyAV has.")
CodecOpt = Annotated[Optional[str], _CODEC]
CrfOpt = Annotated[int, typer.Option(help="Encoder quality (lower = better; 16 is visually lossless for x264).")]
PresetOpt = Annotated[str, typer.Option(help="Encoder speed preset: x264 names ultrafast…placebo, translated for libsvtav1 and VP9; or the encoder's own number.")]
PixFmtOpt = Annotated[Optional[str], typer.Option(help="Output pixel format (default: 4:2:0 at the input's bit depth).")]
FpsOpt = Annotated[str, typer.Option(help="Frame rate for image-folder inputs.")]
NoAudioOpt = Annotated[bool, typer.Option("--no-audio", help="Do not copy audio and subtitle streams.")]
DeinterlaceOpt = Annotated[str, typer.Option(
    "--deinterlace", help="Interlaced input: frame (deinterlace with bwdif, one frame per frame), double (one per field, "
    "twice the frame rate) or off (upscale the fields as progressive frames).")]
SkipBadOpt = Annotated[bool, typer.Option("--skip-bad-frames", help="Where a frame cannot be decoded, repeat the last good one (timing stays intact) instead of failing.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show tracebacks.")]
NoSidecarOpt = Annotated[bool, typer.Option("--no-sidecar", help="Do not write OUT.vsrt.json, the record of how the output was made (`vsrt info OUT`).")]
_SIZE = "Output size"
ScaleOpt = Annotated[Optional[float], typer.Option(help="Output scale above 1 and at most 4 (default 4, the model's own); the model's x4 frames are resized on its device. Keeps the pixel shape (SAR).", rich_help_panel=_SIZE)]
WidthOpt = Annotated[Optional[int], typer.Option(help="Output width in square pixels; the height follows the display aspect (SAR included), rounded to even.", rich_help_panel=_SIZE)]
HeightOpt = Annotated[Optional[int], typer.Option(help="Output height in square pixels; the width follows the display aspect (SAR included), rounded to even (720x480 SAR 8:9 to --height 1080: 1440x1080).", rich_help_panel=_SIZE)]
SizeOpt = Annotated[Optional[str], typer.Option(help="Output WxH in square pixels; refused if it changes the display aspect by more than 1% (unless --stretch).", rich_help_panel=_SIZE)]
StretchOpt = Annotated[bool, typer.Option("--stretch", help="Let --size change the picture's shape.", rich_help_panel=_SIZE)]
FilterOpt = Annotated[str, typer.Option("--resize-filter", help="The filter that resizes the model's x4 frames to the size asked: bicubic (kept most of the model's gain, docs/PERFORMANCE.md), lanczos, area or bilinear; all antialiased.", rich_help_panel=_SIZE)]
RestoreOpt = Annotated[str, typer.Option(help="How much of a compression-aware model's compression offset to use: auto (from the quantiser the input's bitstream reports) or a number from 0 (the clean model's output) to 1 (all of it).")]
_SPAN = "Span (seconds or HH:MM:SS.mmm)"
StartOpt = Annotated[Optional[str], typer.Option(help="Start here: only the frames shown from this time on are decoded (from the keyframe before) and written; audio and subtitles are cut alike; the output starts at 0.", rich_help_panel=_SPAN)]
DurationOpt = Annotated[Optional[str], typer.Option(help="Upscale this long from --start.", rich_help_panel=_SPAN)]
EndOpt = Annotated[Optional[str], typer.Option(help="Stop before this time of the source (instead of --duration).", rich_help_panel=_SPAN)]


def _say(notice: "Notice") -> None:
    from vsrt_cli.cli.progress import notice_line

    err.print(notice_line(notice), highlight=False, soft_wrap=True)


def _job(**options: Any) -> "tuple[VSRT, UpscaleJob]":
    """:func:`~vsrt_cli.jobs.build.build_job`, its notices drawn on stderr."""
    from vsrt_cli.jobs.build import build_job

    return build_job(**options, say=_say)


def _interruptible(message: str):
    """Ctrl-C or SIGTERM anywhere in the command (loading the model included) prints ``message``
    and exits 130/143, not Click's generic "Aborted!" and 1. The command's ``closing`` of its
    event generator has already removed the temporary output by then."""

    def decorate(command):
        @functools.wraps(command)
        def wrapper(*args, **kwargs):
            try:
                return command(*args, **kwargs)
            except KeyboardInterrupt:
                err.print(f"[yellow]interrupted[/]: {message}")
                raise typer.Exit(_interrupt_code()) from None

        return wrapper

    return decorate


@app.command()
@_interruptible("the partial output was removed")
def upscale(
    input: Annotated[Path, typer.Argument(help="A video file, or a folder of PNG/JPEG frames.", show_default=False)],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output video (container from its extension) or a folder for PNG frames.", show_default=False)],
    model: ModelOpt = None,
    weights: WeightsOpt = None,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    tile: TileOpt = None,
    tile_overlap: OverlapOpt = None,
    window: WindowOpt = None,
    window_stride: StrideOpt = None,
    batch: BatchOpt = None,
    codec: CodecOpt = None,
    crf: CrfOpt = 16,
    preset: PresetOpt = "medium",
    pix_fmt: PixFmtOpt = None,
    fps: FpsOpt = "25",
    no_audio: NoAudioOpt = False,
    skip_bad_frames: SkipBadOpt = False,
    deinterlace: DeinterlaceOpt = "frame",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing output.")] = False,
    no_sidecar: NoSidecarOpt = False,
    chunks: Annotated[int, typer.Option("--chunks", help="Upscale the clip as N chunks encoded apart and stitched (the same frames as one run); a rerun after a crash redoes only the missing chunks.")] = 1,
    scale: ScaleOpt = None,
    width: WidthOpt = None,
    height: HeightOpt = None,
    size: SizeOpt = None,
    stretch: StretchOpt = False,
    resize_filter: FilterOpt = "bicubic",
    restore: RestoreOpt = "auto",
    start: StartOpt = None,
    duration: DurationOpt = None,
    end: EndOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Upscale a video (or a folder of frames): x4, or the size asked for."""
    from vsrt_cli.cli.progress import Drawing
    from vsrt_cli.jobs.api import upscale as run_upscale

    with Drawing(err, quiet=quiet) as draw:  # the same function as `from vsrt_cli import upscale`
        run_upscale(
            input, output, model=model, weights=weights, device=device, precision=precision,
            tile=tile, tile_overlap=tile_overlap, window=window, window_stride=window_stride, batch=batch,
            codec=codec, crf=crf, preset=preset, pix_fmt=pix_fmt, fps=fps, no_audio=no_audio,
            overwrite=overwrite, skip_bad_frames=skip_bad_frames, quiet=quiet, chunks=chunks, sidecar=not no_sidecar,
            scale=scale, width=width, height=height, size=size, stretch=stretch, resize_filter=resize_filter, restore=restore,
            start=start, duration=duration, end=end, deinterlace=deinterlace, on_event=draw,
        )


@app.command("batch")
@_interruptible("the clip in progress was removed; finished outputs are kept; run the same command again to resume")
def batch_command(
    input_dir: Annotated[Path, typer.Argument(help="Folder searched (recursively) for clips.", show_default=False)],
    output_dir: Annotated[Path, typer.Option("-o", "--output", help="Folder for the outputs: the input folder's layout, each file's name kept.", show_default=False)],
    glob: Annotated[Optional[str], typer.Option("--glob", help="Only files whose relative path or name matches this pattern, e.g. '*.mov' or 'day1/*' (default: every video extension).")] = None,
    frame_folders: Annotated[bool, typer.Option("--frame-folders", help="Also upscale folders of PNG/JPEG frames (into folders of PNG frames).")] = False,
    container: Annotated[Optional[str], typer.Option("--container", help="Output container for every clip: mp4, mkv, mov or webm (default: the input's where vsrt can write it, else mkv, e.g. for .y4m, .avi, .ogv; the name's stem is kept).")] = None,
    model: ModelOpt = None,
    weights: WeightsOpt = None,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    tile: TileOpt = None,
    tile_overlap: OverlapOpt = None,
    window: WindowOpt = None,
    window_stride: StrideOpt = None,
    batch: BatchOpt = None,
    codec: CodecOpt = None,
    crf: CrfOpt = 16,
    preset: PresetOpt = "medium",
    pix_fmt: PixFmtOpt = None,
    fps: FpsOpt = "25",
    no_audio: NoAudioOpt = False,
    skip_bad_frames: SkipBadOpt = False,
    deinterlace: DeinterlaceOpt = "frame",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Redo clips whose output already exists (default: skip them).")] = False,
    no_sidecar: NoSidecarOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
    workers: Annotated[int, typer.Option("--workers", help="Clips at once on this many CPU workers (with --device cpu), through a local Ray instance (pip install \"vsrt[ray]\").")] = 1,
    devices: Annotated[Optional[str], typer.Option("--devices", help="Spread the clips over these GPUs (cuda:0,cuda:1 or all), one Ray worker each.")] = None,
    ray: Annotated[Optional[str], typer.Option("--ray", help="Join a running Ray cluster: auto or HOST:PORT of its head.")] = None,
    chunk_seconds: Annotated[Optional[float], typer.Option("--chunk-seconds", help="Cut clips longer than this into chunks of about this many seconds, spread over the workers and stitched (the same frames as one run); a rerun redoes only the missing chunks.")] = None,
    scale: ScaleOpt = None,
    width: WidthOpt = None,
    height: HeightOpt = None,
    size: SizeOpt = None,
    stretch: StretchOpt = False,
    resize_filter: FilterOpt = "bicubic",
    restore: RestoreOpt = "auto",
    start: StartOpt = None,
    duration: DurationOpt = None,
    end: EndOpt = None,
) -> None:
    """Upscale every clip in a folder; rerun to resume: finished outputs are skipped."""
    from vsrt_cli.jobs.batch import batch as run_batch
    from vsrt_cli.cli.progress import render_batch

    if chunk_seconds is not None and not chunk_seconds > 0:  # refused before the model loads
        raise ConfigError(f"--chunk-seconds {chunk_seconds:g}: must be positive")
    executor = None
    if workers != 1 or devices is not None or ray is not None:
        from vsrt_cli.jobs.build import DeviceChoice
        from vsrt_cli.jobs.executors.ray import RayExecutor, from_flags

        # the driver runs no model: each worker resolves precision and tiling for its own card
        choice = DeviceChoice(precision=precision, tile=tile, batch=batch)
        spread, device = from_flags(workers=workers, devices=devices, address=ray, device=device, choice=choice)
        executor = RayExecutor(spread) if spread is not None else None

    if not input_dir.is_dir():
        raise InputError(f"{input_dir} is not a folder; `vsrt batch` takes a folder of clips (use `vsrt upscale` for one file)")
    if container is not None:
        from vsrt_cli.io.outputs import output_suffix

        output_suffix("", container)  # an unknown one is refused before the model loads
    # One model for the whole batch: the default for video files, or with --frame-folders (frames
    # can be lossless) the default for image frames; --model chooses either way.
    kind = "frames" if frame_folders else "video"
    net, template = _job(
        source=input_dir, output=output_dir, model=model, weights=weights, device=device, precision=precision,
        tile=tile, tile_overlap=tile_overlap, window=window, window_stride=window_stride, batch=batch,
        codec=codec, crf=crf, preset=preset, pix_fmt=pix_fmt, fps=fps, no_audio=no_audio,
        overwrite=overwrite, skip_bad_frames=skip_bad_frames, quiet=quiet, deinterlace=deinterlace, kind=kind, one_clip=False,
        scale=scale, width=width, height=height, size=size, stretch=stretch, resize_filter=resize_filter, restore=restore,
        start=start, duration=duration, end=end,
    )
    from vsrt_cli.jobs.provenance import identify_model

    record = None if no_sidecar else identify_model(model, weights, kind)
    with contextlib.closing(run_batch(net, input_dir, output_dir, template, pattern=glob, frame_folders=frame_folders, record=record, container=container, executor=executor, chunk_seconds=chunk_seconds)) as events:
        finished = render_batch(events, err, out, quiet=quiet, debug=debug)
    if finished is not None and finished.failed:
        raise typer.Exit(1)


# `vsrt --help` lists the commands by use: upscale, batch (above), then these; `models` last.
register_tools(app)  # preview, compare, info, eval
app.add_typer(models_app, name="models")


class Terminated(KeyboardInterrupt):
    """SIGTERM, delivered like Ctrl-C so the same clean-up runs."""


_signal_received: list[int] = []


def _on_signal(signum: int, _frame: object) -> None:
    _signal_received.append(signum)
    raise Terminated()


def _interrupt_code() -> int:
    """128 + the signal (130 for Ctrl-C, 143 for SIGTERM), as shells report it."""
    import signal

    return 128 + (_signal_received[-1] if _signal_received else signal.SIGINT)


def main(argv: list[str] | None = None) -> None:
    """Entry point: runs the app, turning :class:`VsrtError` into one line and an exit code.

    Usage errors, ``--help`` and ``--version`` are handled by Typer itself (standalone mode).
    ``--debug`` anywhere on the command line lets the traceback through instead.
    """
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    if "--help" in args:  # only then: importing PyAV costs a fifth of a second on every command
        from vsrt_cli.io import encoders

        _CODEC.help = f"Video encoder, one of these here: {', '.join(encoders.encoder_choices())} ({_CODEC_DEFAULTS})."
    # Before torch loads OpenMP: idle worker threads sleep instead of spinning. Spinning made a
    # run 3.6x slower beside any other busy process (the encoder, a second job); see PERFORMANCE.md.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_signal)
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
