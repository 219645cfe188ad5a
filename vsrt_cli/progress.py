"""Draws pipeline events: a rich progress bar on stderr and a one-line summary."""

from __future__ import annotations

from collections.abc import Iterable

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress as Bar,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from vsrt_cli.pipeline import Event, Finished, Notice, Progress, Started


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{int(size)} B"
        size /= 1024
    return f"{size:.1f} GB"


def render(events: Iterable[Event], console: Console, *, quiet: bool = False) -> Finished | None:
    """Consume ``events``, drawing a bar (unless ``quiet``); returns the :class:`Finished` event."""
    finished = None
    bar = Bar(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[fps]} fps"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=quiet,
    )
    with bar:
        task = None
        for event in events:
            if isinstance(event, Started):
                task = bar.add_task(event.source.name, total=event.total, fps="-")
            elif isinstance(event, Progress) and task is not None:
                elapsed = bar.tasks[0].elapsed or 0.0
                fps = f"{event.done / elapsed:.2f}" if elapsed > 0 else "-"
                bar.update(task, completed=event.done, total=event.total, fps=fps)
            elif isinstance(event, Notice) and not quiet:
                console.print(f"[yellow]warning:[/] {event.message}", highlight=False, soft_wrap=True)
            elif isinstance(event, Finished):
                finished = event
    if finished is not None and not quiet:
        fps = finished.frames / finished.seconds if finished.seconds > 0 else 0.0
        console.print(
            f"[green]done:[/] {finished.frames} frames in {finished.seconds:.1f} s ({fps:.2f} fps) -> "
            f"{finished.output} ({human_size(finished.bytes)})",
            highlight=False,
            soft_wrap=True,
        )
    return finished
