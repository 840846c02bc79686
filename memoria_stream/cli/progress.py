"""Progress you can watch: live per-table bars on a terminal, JSON lines for pipelines.

``Progress`` is fed by the engine's callbacks (``on_counts`` with the source's row counts,
``on_batch`` per written batch) and used as ``with``/``async with``. On a terminal (and not
``--quiet``) it draws one rich bar per table on stderr: rows done of total, rows/s, MB/s, ETA,
under one line for the whole job (every table's rows together: done of total, %, rows/s, MB/s, ETA).
With ``--log-format json`` it writes one JSON line per table event (``table_start``,
``table_done``, each with the job's ``job_rows_done`` and ``job_rows_total``) to stderr instead. Otherwise it stays silent; the summary is printed either way.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:  # rich is imported only when bars are drawn (``bars.py``): a command starts sooner
    from rich.progress import Progress as RichProgress, TaskID

    from memoria_stream.transfer.reports import RunReport

LOG_FORMATS = ("text", "json")


def add_progress_options(parser: argparse.ArgumentParser) -> None:
    """``--log-format text|json`` (add ``--quiet`` separately if the command lacks it)."""
    parser.add_argument("--log-format", choices=LOG_FORMATS, default="text",
                        help="text: live progress on a terminal; json: one JSON line per table event on stderr")


def progress_for(args: argparse.Namespace) -> "Progress":
    """The progress display a command's flags ask for."""
    return Progress(quiet=bool(getattr(args, "quiet", False)), log_format=getattr(args, "log_format", "text"))


@dataclass
class _Table:
    name: str
    total: int | None = None
    rows: int = 0
    bytes: int = 0
    started: float | None = None
    done: bool = False
    task: TaskID | None = field(default=None, repr=False)


class Progress:
    """Per-table progress on ``stream`` (stderr by default); see the module docstring."""

    def __init__(self, *, stream: IO[str] | None = None, quiet: bool = False, log_format: str = "text",
                 live: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.json = log_format == "json" and not quiet
        self.live = (not quiet and log_format == "text" and _is_terminal(self.stream)) if live is None else live
        self._tables: dict[str, _Table] = {}
        self._bars: RichProgress | None = None
        self._job: TaskID | None = None  # the whole job's line, above the tables' bars
        self._job_started: float | None = None

    @property
    def active(self) -> bool:
        """Whether anything is shown while work runs (callers may skip measuring batch sizes)."""
        return self.live or self.json

    # --- lifecycle ----------------------------------------------------------------------------

    def __enter__(self) -> "Progress":
        if self.live and self._bars is None:
            from memoria_stream.cli.bars import table_bars

            self._bars = table_bars(self.stream)
            self._job = self._bars.add_task("total", total=None, start=False, bytes=0)
            self._bars.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close(failed=exc is not None)

    async def __aenter__(self) -> "Progress":
        return self.__enter__()

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.__exit__(kind, exc, tb)

    def close(self, *, failed: bool = False) -> None:
        """Finish every table still open (not after a failure) and take the display down; idempotent."""
        if not failed:
            for table in self._tables.values():
                self._start(table)
                self._finish(table)
        if self._bars is not None:
            self._bars.stop()
            self._bars = None

    # --- engine callbacks ---------------------------------------------------------------------

    def on_counts(self, counts: dict[str, int]) -> None:
        """Row totals per table (from the source, or from an input file's metadata)."""
        for name, total in counts.items():
            table = self._table(name)
            table.total = total
            if self._bars is not None and table.task is not None:
                self._bars.update(table.task, total=total)
        if self._bars is not None and self._job is not None:
            self._bars.update(self._job, total=self.job_rows_total)

    def on_batch(self, name: str, rows: int, size: int) -> None:
        """A batch of ``rows`` rows (about ``size`` bytes) of table ``name`` was written."""
        table = self._table(name)
        self._start(table)
        table.rows += rows
        table.bytes += size
        if self._bars is not None and table.task is not None:
            self._bars.update(table.task, advance=rows, bytes=table.bytes)
        if self._bars is not None and self._job is not None:
            if self._job_started is None:
                self._job_started = time.perf_counter()
                self._bars.start_task(self._job)
            self._bars.update(self._job, advance=rows, bytes=sum(t.bytes for t in self._tables.values()))
        if table.total is not None and table.rows >= table.total:
            self._finish(table)

    @property
    def job_rows_done(self) -> int:
        return sum(t.rows for t in self._tables.values())

    @property
    def job_rows_total(self) -> int | None:
        """Every table's announced rows together; ``None`` until some table's total is known."""
        totals = [t.total for t in self._tables.values() if t.total is not None]
        return sum(totals) if totals else None

    # --- the summary, in every mode -----------------------------------------------------------

    def summary(self, report: RunReport, headline: str) -> None:
        """The final per-table summary: a JSON line with ``--log-format json``, else the text table."""
        if self.quiet:
            return
        if self.json:
            self._emit({"event": "summary", "headline": headline, **report.as_dict(),
                        "job_rows_done": report.total_rows, "job_rows_total": self.job_rows_total})
            return
        print_summary(report, headline)

    # --- internals ----------------------------------------------------------------------------

    def _table(self, name: str) -> _Table:
        if name not in self._tables:
            self._tables[name] = _Table(name)
            if self._bars is not None:
                self._tables[name].task = self._bars.add_task(name, total=None, start=False, bytes=0)
        return self._tables[name]

    def _start(self, table: _Table) -> None:
        if table.started is not None:
            return
        table.started = time.perf_counter()
        if self._bars is not None and table.task is not None:
            self._bars.start_task(table.task)
        if self.json:
            self._emit({"event": "table_start", "table": table.name, "rows_total": table.total, **self._job_counts()})

    def _finish(self, table: _Table) -> None:
        if table.done:
            return
        table.done = True
        seconds = time.perf_counter() - (table.started or time.perf_counter())
        if self._bars is not None and table.task is not None:
            self._bars.update(table.task, total=max(table.rows, table.total or 0), completed=table.rows)
            self._bars.stop_task(table.task)
        if self.json:
            self._emit({"event": "table_done", "table": table.name, "rows": table.rows, "bytes": table.bytes,
                        "seconds": round(seconds, 4),
                        "rows_per_second": round(table.rows / seconds) if seconds > 0 else None,
                        **self._job_counts()})

    def _job_counts(self) -> dict[str, int | None]:
        return {"job_rows_done": self.job_rows_done, "job_rows_total": self.job_rows_total}

    def _emit(self, event: dict[str, Any]) -> None:
        line = orjson.dumps({"time": time.time(), **event}, default=str).decode()
        print(line, file=self.stream, flush=True)


def _is_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def print_summary(report: RunReport, headline: str) -> None:
    """The per-table summary, on stderr so that stdout carries only data."""
    out = sys.stderr
    width = max([len(name) for name in report.tables] + [5])
    print(f"{'table':<{width}}  {'rows':>10}  {'seconds':>8}  {'rows/s':>10}", file=out)
    for table in report.tables.values():
        print(f"{table.name:<{width}}  {table.rows:>10}  {table.seconds:>8.2f}  {table.rows_per_second:>10.0f}",
              file=out)
    if len(report.tables) > 1:  # the whole job
        seconds = report.seconds or sum(t.seconds for t in report.tables.values())
        speed = report.total_rows / seconds if seconds > 0 else 0.0
        print(f"{'total':<{width}}  {report.total_rows:>10}  {seconds:>8.2f}  {speed:>10.0f}", file=out)
    for warning in report.warnings:
        print(f"warning: {warning}", file=out)
    if report.created_tables:
        print(f"created tables: {', '.join(report.created_tables)}", file=out)
    print(f"{headline} in {report.seconds:.2f} s", file=out)
