"""``--commit-per-table [--resume]``: one transaction per table, so that a crash costs one table.

Each table is loaded by ``import_events`` in its own transaction; once that has committed (and,
for a table the run created, its indexes are built), the table is read back and its row count and
``verify`` checksum are recorded in ``memoria_stream_progress`` (see ``resume_state.py``). A crash
between the commit and the record only means that table is loaded again by the resumed run.
With ``resume=True`` a rerun skips every table recorded under the same run key whose count and
checksum on the target still match the record, and redoes the rest; without it the run key's
records are cleared first.

Tables load parents first, each emptied inside its own transaction (so a crash leaves every table
either complete and recorded, or as it was). A table's foreign-key check leaves out the tables
still to load: their old rows may point at ids the new parent no longer has, and they are checked
against it when their own turn comes. Until the run ends the target is half-written — the price
of this mode (see the README, Reliability).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import AsyncGenerator, AsyncIterator, Callable, Collection, Sequence

import anyio.to_thread

from memoria_stream.model.catalog import EXPORT_ORDER, get_table, insert_order
from memoria_stream.codecs import DEFAULT_MAX_LINE, decoder_for, normalise_format
from memoria_stream.codecs.base import Event, Metadata, TableStart
from memoria_stream.transfer.copy import _Job
from memoria_stream.drivers import connect
from memoria_stream.drivers.base import Connection, LiveColumn
from memoria_stream.errors import InputError
from memoria_stream.transfer.export import BATCH_ROWS, OnBatch
from memoria_stream.transfer.load import FinalCheck, OnCounts, check_foreign_keys, import_events
from memoria_stream.transfer.plans import check_table_name
from memoria_stream.transfer.reports import RunReport
from memoria_stream.transfer.resume_state import (Finished, ensure_state_table, file_identity, forget, read_finished, record, run_key,
                           source_database_identity, table_state)
from memoria_stream.transfer.schema import create_missing_indexes
from memoria_stream.drivers.snapshots import open_snapshots
from memoria_stream.codecs.streams import open_source, sniff_format
from memoria_stream.drivers.urls import mask_url, resolve_url

OnSkipped = Callable[[list[Finished]], None]
Live = dict[str, list[LiveColumn]]


async def copy_per_table(
    source_url: str, target_url: str, *, tables: Sequence[str] | None = None, resume: bool = False,
    batch_rows: int = BATCH_ROWS, on_batch: OnBatch | None = None, on_counts: OnCounts | None = None,
    on_skipped: OnSkipped | None = None, allow_lossy: bool = False,
) -> RunReport:
    """``copy_database`` with one committed transaction per table (and ``resume`` after a crash).

    The source is read inside one snapshot for the whole run; a resumed run reads a new snapshot,
    so the tables it skips hold the earlier run's moment."""
    started = time.perf_counter()
    async with connect(target_url) as target:
        async with open_snapshots(source_url, 1, tables or EXPORT_ORDER) as readers:
            job = _Job(readers, target, True, batch_rows, on_batch, mask_url(source_url))
            await job.plan(tables)
            run = _Run(target, run_key("copy", source_database_identity(source_url), job.names), resume, "copy")
            todo = await run.start(job.names, on_skipped)
            if on_counts:
                on_counts({name: job.counts[name] for name in todo})
            for plan in [p for p in job.plans if p.layout.name in todo]:
                name = plan.layout.name
                events = job._events(readers[0], iter([plan]), header=False)
                await run.add(await import_events(target, events, source=job.label, tables=[name], on_batch=on_batch,
                                                  final_check=run.check(name, job._checked(None)),
                                                  allow_lossy=allow_lossy))
            await run.finish(job.names)
    for warning in job.warnings:
        run.report.warn(warning)
    run.report.seconds = time.perf_counter() - started
    return run.report


async def import_per_table(
    source: str | Path, *, database_url: str | None = None, format: str | None = None,
    tables: Sequence[str] | None = None, resume: bool = False, max_line_bytes: int = DEFAULT_MAX_LINE,
    on_batch: OnBatch | None = None, on_counts: OnCounts | None = None, on_skipped: OnSkipped | None = None,
    allow_lossy: bool = False,
    accept_altered: bool = False,
) -> RunReport:
    """``import_data`` from a file with one committed transaction per table (and ``resume``).

    The file is read once per table to load (``tables=[name]``: streaming, bounded memory), plus
    once to list its tables when its metadata does not come first."""
    if str(source) == "-":
        raise InputError("--commit-per-table needs SRC to be a file: it reads the input once per table, "
                         "and stdin cannot be read a second time")
    started = time.perf_counter()
    reader = _FileReader(Path(source), normalise_format(format), max_line_bytes)
    listed = await reader.table_names()
    async with connect(resolve_url(database_url)) as conn:
        names = await _selected(conn, listed, tables, reader.label)
        identity = await anyio.to_thread.run_sync(file_identity, reader.path)
        run = _Run(conn, run_key("import", identity, names), resume, "import")
        for name in await run.start(names, on_skipped):
            async with reader.events(set(listed), tables) as events:
                await run.add(await import_events(conn, events, source=reader.label, tables=[name], on_batch=on_batch,
                                                  on_counts=on_counts, final_check=run.check(name),
                                                  allow_lossy=allow_lossy,
                                                  check_completeness=True, accept_altered=accept_altered))
        await run.finish(names)
    run.report.format = reader.format
    run.report.seconds = time.perf_counter() - started
    return run.report


@dataclass
class _Run:
    """One commit-per-table run on one target connection."""

    conn: Connection
    key: str
    resume: bool
    operation: str
    report: RunReport = field(init=False)
    skipped: list[Finished] = field(default_factory=list)
    todo: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.report = RunReport(self.operation)

    async def start(self, names: Sequence[str], on_skipped: OnSkipped | None) -> list[str]:
        """Decide what to skip; returns the tables to load, in order."""
        await ensure_state_table(self.conn)
        live = set(await self.conn.table_names())
        if self.resume:
            finished = await read_finished(self.conn, self.key)
            self.skipped = [finished[n] for n in names if n in finished and n in live
                            and await table_state(self.conn, n) == (finished[n].rows, finished[n].checksum)]
        else:
            await forget(self.conn, self.key)
        if on_skipped:
            on_skipped(self.skipped)
        done = {f.table for f in self.skipped}
        self.todo = [n for n in names if n not in done]
        for name in self.todo:  # a stale record (the table changed since) must not outlive this decision
            await forget(self.conn, self.key, name)
        return self.todo

    def check(self, name: str, base: FinalCheck = check_foreign_keys) -> FinalCheck:
        """``base`` for table ``name``, blind to the tables that load after it."""
        pending = set(self.todo[self.todo.index(name) + 1:])

        async def final_check(conn: Connection, touched: Collection[str], live: Live) -> None:
            await base(conn, touched, {n: columns for n, columns in live.items() if n not in pending})
        return final_check

    async def add(self, part: RunReport) -> None:
        """Record the tables of ``part``, a load that has just committed, and keep its report."""
        for name in part.tables:
            await record(self.conn, self.key, name)
        self.report.tables.update(part.tables)
        self.report.created_tables += part.created_tables
        self.report.metadata = self.report.metadata or part.metadata
        for warning in part.warnings:
            self.report.warn(warning)

    async def finish(self, names: Sequence[str]) -> None:
        # A table the importer creates gets its indexes after the bulk load; a crash in between
        # (SIGKILL; on MySQL even after the commit) leaves the table without them, and the rerun
        # finds it existing (so the importer builds none), or skips it: they are made here.
        for name in names:
            await create_missing_indexes(self.conn, [name])
        self.report.metadata = {**self.report.metadata, "commit_per_table": {
            "run_key": self.key, "resumed": self.resume, "skipped": [f.table for f in self.skipped],
            "loaded": list(self.report.tables)}}


async def _selected(conn: Connection, listed: list[str], wanted: Sequence[str] | None, label: str) -> list[str]:
    """The file's tables narrowed by ``wanted``, parents first; unknown names fail before any change."""
    names = [check_table_name(n, source=label) for n in listed]
    if wanted:
        absent = [n for n in wanted if n not in names]
        if absent:
            raise InputError(f"not in the input: {', '.join(absent)}", source=label)
        names = [n for n in names if n in wanted]
    live = set(await conn.table_names())
    unknown = [n for n in names if get_table(n) is None and n not in live]
    if unknown:
        raise InputError(f"unknown table: {', '.join(unknown)}", source=label)
    if not names:
        raise InputError("the input holds no recognised table; nothing was changed", source=label)
    return insert_order(names)


class _FileReader:
    """Opens the same file as many times as needed, each time as a fresh stream of events."""

    def __init__(self, path: Path, format: str | None, max_line: int) -> None:
        self.path, self.format, self.max_line, self.label = path, format, max_line, str(path)

    async def table_names(self) -> list[str]:
        """The tables the file carries: its metadata's list when that comes first (Memoria's
        NDJSON, our exports), else every table it names, found by reading it through once."""
        names: dict[str, None] = {}
        async with self._open() as events:
            async for event in events:
                if isinstance(event, Metadata):
                    if not names and event.table_names:
                        return event.table_names
                    names.update(dict.fromkeys(event.table_names))
                elif isinstance(event, TableStart):
                    names[event.table] = None
        return list(names)

    @contextlib.asynccontextmanager
    async def events(self, listed: set[str], wanted: Sequence[str] | None) -> AsyncIterator[AsyncIterator[Event]]:
        """The file's events; a table in the data that the plan does not know stops the run
        (in the first table's transaction, so before it commits)."""
        async with self._open() as events:
            guarded = _guarded(events, listed, set(wanted or ()), self.label)
            try:
                yield guarded
            finally:
                await guarded.aclose()

    @contextlib.asynccontextmanager
    async def _open(self) -> AsyncIterator[AsyncIterator[Event]]:
        async with open_source(self.path, name=self.label) as stream:
            if self.format is None:
                self.format, stream = await sniff_format(stream, limit=self.max_line)
            events = decoder_for(self.format, max_line=self.max_line).events(stream, source=self.label)
            try:
                yield events
            finally:
                close = getattr(events, "aclose", None)
                if close is not None:
                    await close()


async def _guarded(events: AsyncIterator[Event], listed: set[str], wanted: set[str],
                   label: str) -> AsyncGenerator[Event, None]:
    async for event in events:
        if isinstance(event, TableStart) and event.table not in listed and (not wanted or event.table in wanted):
            raise InputError(f"table {event.table!r:.80} is not in the file's metadata; import this file "
                             "without --commit-per-table", source=label, line=event.line)
        yield event
