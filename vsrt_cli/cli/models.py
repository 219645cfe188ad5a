"""``vsrt models list|info|path|download``: the registry of named models, on the command line."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.console import Console
from rich import box
from rich.table import Column, Table

from vsrt_cli.errors import ConfigError

if TYPE_CHECKING:
    from vsrt_cli.model import VSRTConfig
    from vsrt_cli.zoo.registry import ModelEntry

models_app = typer.Typer(help="Model presets and their weights.", no_args_is_help=True)
out = Console()
err = Console(stderr=True)


def _n_params(config: "VSRTConfig") -> int:
    import torch

    from vsrt_cli.model import build_model

    with torch.device("meta"):
        return sum(p.numel() for p in build_model(config).parameters())


def _short(count: int) -> str:
    """A parameter count in three figures: 588k, 32.6M."""
    return f"{count / 1e6:.3g}M" if count >= 1e6 else f"{count / 1e3:.3g}k"


def _weights_status(entry: "ModelEntry") -> str:
    from vsrt_cli.zoo.registry import local_path

    path = local_path(entry)
    if entry.bundled:
        return "bundled" if path else "bundled (missing!)"
    return "downloaded" if path else "not downloaded"


@models_app.command("list")
def models_list() -> None:
    """List the named models and whether their weights are here."""
    from vsrt_cli.zoo.registry import default_name, entries

    # fits 80 columns: nothing a user chooses by is cut short
    table = Table(Column("name", no_wrap=True), Column("frames", no_wrap=True), Column("LR size", no_wrap=True),
                  Column("params", no_wrap=True, justify="right"), Column("weights", no_wrap=True),
                  Column("gain", justify="right", no_wrap=True), Column("cost", justify="right", no_wrap=True),
                  box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    defaults = {"video": default_name("video"), "frames": default_name("frames")}
    for name, entry in entries().items():
        config = entry.config
        size = f"{config.tile}x{config.tile}" if config.norm == "tile" else "any"
        gain, cost = _choice(entry)
        table.add_row(name, str(config.num_frame), size, _short(_n_params(config)), _weights_status(entry), gain, cost)
    out.print(table)
    out.print("gain: held-out PSNR-Y over bicubic in dB (the manifest's quality); cost: time per frame against "
              "the default for video files (the manifest's cost; `vsrt models info NAME` says how measured)",
              highlight=False)
    for kind, label in (("video", "a video file"), ("frames", "a folder of image frames")):
        if defaults[kind] is not None:
            out.print(f"default for {label}: {defaults[kind]}", highlight=False)


def _choice(entry: "ModelEntry") -> tuple[str, str]:
    """The two columns a user chooses by: the held-out gain over bicubic and the relative cost."""
    gain = entry.details.get("quality", {}).get("gain_over_bicubic_db")
    cost = entry.details.get("cost", {}).get("time_per_frame_vs_default")
    return ("-" if gain is None else f"{gain:+.2f}", "-" if cost is None else f"x{cost:.2f}")


@models_app.command("info")
def models_info(name: Annotated[str, typer.Argument(help="Model name.")]) -> None:
    """Show a model's configuration, weights source and measured quality."""
    import dataclasses
    import json

    from vsrt_cli.zoo.registry import get_entry, local_path

    entry = get_entry(name)
    path = local_path(entry)
    out.print(f"[bold]{entry.name}[/]: {entry.description}", highlight=False)
    out.print(f"parameters: {_n_params(entry.config):,}")
    out.print(f"config: {json.dumps(dataclasses.asdict(entry.config))}", highlight=False)
    out.print(f"weights: {_weights_status(entry)}{f' at {path}' if path else ''}", highlight=False)
    if entry.sha256:
        out.print(f"sha256: {entry.sha256}")
    if entry.license:
        out.print(f"licence: {entry.license}", highlight=False)
    for key in ("training", "quality", "cost"):
        if key in entry.details:
            out.print(f"{key}: {json.dumps(entry.details[key], indent=2)}", highlight=False)


@models_app.command("path")
def models_path(name: Annotated[str, typer.Argument(help="Model name.")]) -> None:
    """Print the local path of a model's weights (fails if they are not here)."""
    from vsrt_cli.zoo.registry import get_entry, require_path

    out.print(str(require_path(get_entry(name))), highlight=False, soft_wrap=True)


@models_app.command("download")
def models_download(
    name: Annotated[str, typer.Argument(help="Model name.")],
    url: Annotated[Optional[str], typer.Option(help="Where to fetch the weights (needed for the authors' models).")] = None,
    sha256: Annotated[Optional[str], typer.Option(help="Expected sha256 of the file (checked before it is installed).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Download a model's weights into the user cache (resumes an interrupted download)."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    from vsrt_cli.zoo.download import download, sha256_file
    from vsrt_cli.zoo.registry import cache_dir, get_entry, local_path

    entry = get_entry(name)
    if entry.bundled:
        out.print(f"{name} is bundled with vsrt; nothing to download ({local_path(entry)})", highlight=False)
        return
    source = url or entry.url
    if source is None:
        raise ConfigError(f"{name} has no public download address; pass --url URL (and --sha256 if you know it)")
    assert entry.filename is not None
    dest = cache_dir() / entry.filename
    expected = sha256 or entry.sha256
    with Progress("[bold]{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                  console=err, transient=True, disable=quiet) as bar:
        task = bar.add_task(name, total=None)
        for step in download(source, dest, expected):
            bar.update(task, completed=step.done, total=step.total)
    digest = expected or sha256_file(dest)
    dest.with_name(dest.name + ".sha256").write_text(digest + "\n")
    if not quiet:
        err.print(f"[green]done:[/] {dest} (sha256 {digest})", highlight=False, soft_wrap=True)
