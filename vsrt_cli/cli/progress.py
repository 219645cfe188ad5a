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

from rich.table import Table

from vsrt_cli.jobs.batch import BatchEvent, BatchFinished, BatchStarted, ClipFinished, ClipProgress, ClipResult, ClipStarted
from vsrt_cli.engine.pipeline import Event, Finished, Notice, Progress, Started


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{int(size)} B"
        size /= 1024
    return f"{size:.1f} GB"


def notice_line(notice: Notice) -> str:
    """A notice as the terminal shows it: a problem the run worked around, or a note."""
    label = "[cyan]note:[/]" if notice.note else "[yellow]warning:[/]"
    return f"{label} {notice.message}"


class Drawing:
    """Draws events one at a time (the Python API's ``on_event``): a bar (unless ``quiet``),
    notices, and the one-line summary once the block ends. ``with Drawing(console) as draw:
    upscale(..., on_event=draw)``; :attr:`finished` is the :class:`Finished` event."""

    def __init__(self, console: Console, *, quiet: bool = False) -> None:
        self.console, self.quiet = console, quiet
        self.bar = _bar(console, quiet, TextColumn("{task.fields[fps]} fps"))
        self.task = None
        self.finished: Finished | None = None

    def __enter__(self) -> Drawing:
        self.bar.__enter__()
        return self

    def __call__(self, event: Event) -> None:
        bar = self.bar
        if isinstance(event, Started):
            self.task = bar.add_task(event.source.name, total=event.total, fps="-")
        elif isinstance(event, Progress) and self.task is not None:
            elapsed = bar.tasks[0].elapsed or 0.0
            fps = f"{event.done / elapsed:.2f}" if elapsed > 0 else "-"
            bar.update(self.task, completed=event.done, total=event.total, fps=fps)
        elif isinstance(event, Notice) and not self.quiet:
            self.console.print(notice_line(event), highlight=False, soft_wrap=True)
        elif isinstance(event, Finished):
            self.finished = event

    def __exit__(self, *exc: object) -> None:
        self.bar.__exit__(*exc)
        finished = self.finished
        if finished is not None and not self.quiet and exc[0] is None:
            fps = finished.frames / finished.seconds if finished.seconds > 0 else 0.0
            size = f", {finished.width}x{finished.height}" if finished.width else ""
            self.console.print(
                f"[green]done:[/] {finished.frames} frames in {finished.seconds:.1f} s ({fps:.2f} fps) -> "
                f"{finished.output} ({human_size(finished.bytes)}{size})",
                highlight=False,
                soft_wrap=True,
            )


def render(events: Iterable[Event], console: Console, *, quiet: bool = False) -> Finished | None:
    """Consume ``events``, drawing a bar (unless ``quiet``); returns the :class:`Finished` event."""
    with Drawing(console, quiet=quiet) as draw:
        for event in events:
            draw(event)
    return draw.finished


def _bar(console: Console, quiet: bool, *extra: TextColumn) -> Bar:
    """The progress bar of every command; ``extra`` columns go before the times."""
    return Bar(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        *extra,
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=quiet,
    )


def render_batch(
    events: Iterable[BatchEvent], console: Console, table_console: Console, *,
    quiet: bool = False, debug: bool = False,
) -> BatchFinished | None:
    """Draw a batch: one bar for all frames of all clips, one for the clip at work, warnings as
    they come, then a table of every clip's result (on ``table_console``)."""
    finished = None
    results: list[ClipResult] = []
    with _bar(console, quiet) as bar:
        overall = clip_task = None
        before = 0  # frames of the clips already finished or skipped
        tasks: dict = {}  # clip source -> its bar
        running: dict = {}  # clip source -> frames done, while several clips run at once
        count = 0
        for event in events:
            if isinstance(event, BatchStarted):
                count = len(event.clips)
                overall = bar.add_task(f"all clips 0/{count}", total=event.total_frames)
            elif isinstance(event, ClipStarted):
                clip_task = bar.add_task(event.clip.name, total=event.clip.frames)
                tasks[event.clip.source] = clip_task
                if overall is not None:
                    bar.update(overall, description=f"all clips {event.number}/{count}")
            elif isinstance(event, Progress) and clip_task is not None:
                bar.update(clip_task, completed=event.done, total=event.total)
                if overall is not None:
                    bar.update(overall, completed=before + event.done)
            elif isinstance(event, ClipProgress) and event.clip.source in tasks:  # several clips at once
                bar.update(tasks[event.clip.source], completed=event.done, total=event.total)
                running[event.clip.source] = event.done
                if overall is not None:
                    bar.update(overall, completed=before + sum(running.values()))
            elif isinstance(event, Notice) and not quiet:
                console.print(notice_line(event), highlight=False, soft_wrap=True)
            elif isinstance(event, ClipFinished):
                result = event.result
                results.append(result)
                before += result.frames if result.status == "done" else (result.clip.frames or 0)
                running.pop(result.clip.source, None)
                task = tasks.pop(result.clip.source, None)
                if task is not None:
                    bar.remove_task(task)
                clip_task = None
                if overall is not None:
                    bar.update(overall, completed=before)
                if result.status == "failed":
                    console.print(f"[bold red]failed:[/] {result.clip.name}: {result.reason}", highlight=False, soft_wrap=True)
                    if debug and result.detail:
                        console.print(result.detail, highlight=False, markup=False)
            elif isinstance(event, BatchFinished):
                finished = event
    if results and not quiet:
        table_console.print(result_table(results))
    if finished is not None and not quiet:
        counts = {s: sum(r.status == s for r in finished.results) for s in ("done", "skipped", "failed")}
        colour = "red" if counts["failed"] else "green"
        console.print(
            f"[{colour}]{counts['done']} done, {counts['skipped']} skipped, {counts['failed']} failed[/]; "
            f"report: {finished.report}", highlight=False, soft_wrap=True,
        )
    return finished


def result_table(results: list[ClipResult]) -> Table:
    """One row per clip: result, frames, time and the reason of a skip or failure."""
    table = Table("clip", "result", "frames", "time", "note")
    style = {"done": "green", "skipped": "dim", "failed": "red"}
    for r in results:
        note = r.reason or (f"{r.repaired} bad frame(s) repeated" if r.repaired else "")
        for prefix in (f"{r.clip.source}: ", f"{r.clip.source} "):  # the row already names the clip
            note = note.removeprefix(prefix)
        seconds = f"{r.seconds:.1f} s" if r.status != "skipped" else ""
        frames = str(r.frames) if r.status != "skipped" else ""
        table.add_row(r.clip.name, f"[{style[r.status]}]{r.status}[/]", frames, seconds, note)
    return table
