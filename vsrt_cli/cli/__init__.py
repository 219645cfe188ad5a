"""The command line: Typer commands that turn flags into frozen job objects, run them and draw
their progress events. Nothing else happens here (docs/ARCHITECTURE.md)."""

from vsrt_cli.cli.app import main

__all__ = ["main"]
