"""The rich bars ``Progress`` draws on a terminal: one line per table and one for the whole job.

A module of its own so that rich, the largest import of the command line, is loaded only when a
terminal shows bars: a quiet or piped run starts without it."""

from __future__ import annotations

from typing import IO

from rich.console import Console
from rich.progress import BarColumn, ProgressColumn, Task, TaskProgressColumn, TextColumn, TimeRemainingColumn
from rich.progress import Progress as RichProgress
from rich.text import Text


class _RowsPerSecond(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} rows/s" if speed else "- rows/s", style="cyan")


class _MegabytesPerSecond(ProgressColumn):
    def render(self, task: Task) -> Text:
        elapsed = task.finished_time or task.elapsed
        size = task.fields.get("bytes", 0)
        return Text(f"{size / elapsed / 1e6:,.1f} MB/s" if elapsed and size else "- MB/s", style="magenta")


class _RowsDoneOfTotal(ProgressColumn):
    """``12,345/100,000``: rows done of the total, with thousands separators."""

    def render(self, task: Task) -> Text:
        total = f"{int(task.total):,}" if task.total is not None else "?"
        return Text(f"{int(task.completed):,}/{total}", style="green")


def table_bars(stream: IO[str]) -> RichProgress:
    return RichProgress(
        TextColumn("[bold]{task.description}", justify="left"), BarColumn(), _RowsDoneOfTotal(),
        TaskProgressColumn(), _RowsPerSecond(), _MegabytesPerSecond(), TimeRemainingColumn(),
        console=Console(file=stream, force_terminal=True), refresh_per_second=8,
    )
