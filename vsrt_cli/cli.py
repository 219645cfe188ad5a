"""The ``vsrt`` command line: flags become frozen configs; VsrtError becomes one red line.

Only this module prints. Work functions elsewhere return values or yield progress events.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from vsrt_cli import __version__
from vsrt_cli.errors import VsrtError

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
