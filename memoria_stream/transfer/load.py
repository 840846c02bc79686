"""Import: decode and convert rows in one stage, write them in another, all in one transaction.

Only the tables the input carries (narrowed by ``tables``) are truncated, inside the same
transaction as the load, so any failure leaves the target exactly as it was.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, AsyncIterator, Awaitable, Callable, Collection, Sequence

from memoria_stream.model.catalog import EXPORT_ORDER, ForeignKey, delete_order, get_table, insert_order
from memoria_stream.codecs.base import Event, Metadata, TableLayout, TableStart, Trailer
from memoria_stream.transfer.completeness import Completeness, check_import
from memoria_stream.drivers.base import Connection, KeyScan, LineWriter, LiveColumn, shielded
from memoria_stream.drivers import connect
from memoria_stream.errors import DatabaseError, InputError, IntegrityFailure, MemoriaStreamError
from memoria_stream.transfer.row_streams import OpenStream
from memoria_stream.transfer.pipeline import channel, run_stages
from memoria_stream.transfer.plans import ImportPlan, check_table_name
from memoria_stream.transfer.reports import RunReport
from memoria_stream.model.types import Row
from memoria_stream.transfer.schema import (
    create_missing_indexes, create_missing_indexes_alongside, drop_tables, ensure_tables, live_tables)
from memoria_stream.transfer.key_order import KeyOrder, sorted_batches, text_key_position
from memoria_stream.transfer.spool import Spool, open_spool


OnBatch = Callable[[str, int, int], None]
OnCounts = Callable[[dict[str, int]], None]
FinalCheck = Callable[[Connection, Collection[str], dict[str, list[LiveColumn]]], Awaitable[None]]


@dataclass
class CanonicalBatch:
    """Rows already holding canonical values (read from a database), in ``layout``'s column order.

    ``copy`` feeds these instead of file objects: no detour through dicts and strict coercion."""

    layout: TableLayout
    rows: Sequence[Row]
    size: int = 0  # approximate bytes, for progress only
    json_text: bool = False  # JSON columns hold stored text, unparsed (``ImportPlan.from_canonical``)


async def import_events(
    conn: Connection,
    events: AsyncIterator[Event | CanonicalBatch],
    *,
    source: str,
    tables: Sequence[str] | None = None,
    truncate: bool = True,
    create_missing: bool = True,
    on_batch: OnBatch | None = None,
    on_counts: OnCounts | None = None,
    final_check: FinalCheck | None = None,
    allow_lossy: bool = False,
    check_completeness: bool = False,
    accept_altered: bool = False,
) -> RunReport:
    """Load a decoded input into ``conn`` atomically; returns what was written per table.

    ``on_counts`` gets the row counts the input's metadata announces (progress totals);
    ``final_check`` replaces the foreign-key check run inside the transaction before it commits.
    Values a target column would store changed (``limits.loss_check``) fail the load before it
    commits, unless ``allow_lossy``: then each such column is a warning with its count.
    ``check_completeness`` (a file's events) refuses input that does not match its header's counts or
    its trailer, unless ``accept_altered`` (see ``completeness.py``)."""
    report = RunReport("import")
    wanted = set(tables) if tables else None
    # Where DDL is transactional, missing tables are created inside the load's transaction, so a
    # crash at any point leaves nothing behind. MySQL commits DDL implicitly: there they are created
    # first and dropped again if the load fails.
    inside = conn.capabilities.transactional_ddl
    created = [] if inside else await _prepare_schema(conn, wanted, create_missing, report)
    try:
        async with conn.transaction(foreign_keys=False):
            if inside:
                created = await _prepare_schema(conn, wanted, create_missing, report, own_transaction=False)
            live = await live_tables(conn)
            if wanted:
                unknown = sorted(wanted - set(live))
                if unknown:
                    raise InputError(f"unknown table: {', '.join(unknown)}")
            loader = _Loader(conn, live, wanted, truncate, source, report, on_batch)
            loader.on_counts, loader.final_check = on_counts, final_check or check_foreign_keys
            loader.allow_lossy = allow_lossy
            loader.completeness = Completeness(source, loader._selected) if check_completeness else None
            loader.accept_altered = accept_altered
            await loader.run(events)
            if inside:
                if conn.capabilities.settle_constraints_sql:  # deferred FK checks block CREATE INDEX
                    await conn.execute(conn.capabilities.settle_constraints_sql)
                await create_missing_indexes(conn, list(loader.plans))
        if not inside:
            largest_first = sorted(loader.plans, key=lambda name: -report.table(name).rows)
            await create_missing_indexes_alongside(conn, largest_first)
    except BaseException:
        if created and not inside:
            await shielded(_drop_created(conn, created))
        raise
    return report


async def _drop_created(conn: Connection, created: list[str]) -> None:
    """Undo the tables this run created, without hiding the error that brought us here."""
    try:
        await drop_tables(conn, created)
    except MemoriaStreamError:
        # The load's connection may have died with it (aiomysql closes a connection cancelled
        # mid-statement); the server rolled its transaction back, so a fresh connection can drop.
        with contextlib.suppress(MemoriaStreamError):
            async with connect(conn.url) as fresh:
                await drop_tables(fresh, created)


async def _prepare_schema(conn: Connection, wanted: set[str] | None, create: bool, report: RunReport,
                          *, own_transaction: bool = True) -> list[str]:
    if not create:
        return []
    # Indexes of tables created here are built after the bulk load: one sorted build per index
    # instead of maintaining every index row by row (the same end state, several times faster).
    names = [n for n in EXPORT_ORDER if wanted is None or n in wanted]
    schema = await ensure_tables(conn, names, indexes=False, own_transaction=own_transaction)
    report.created_tables = schema.created
    return schema.created


class _Loader:
    """Writes prepared batches as they come; where deletes cascade (FK checks could not be switched
    off), first empties every imported table children-first, and parks in a private spool each table
    that must wait for its parents (FKs checked row by row) or for the list of imported tables."""

    def __init__(self, conn: Connection, live: dict[str, list[LiveColumn]], wanted: set[str] | None,
                 truncate: bool, source: str, report: RunReport, on_batch: OnBatch | None) -> None:
        self.conn, self.live, self.wanted = conn, live, wanted
        self.truncate, self.source, self.report, self.on_batch = truncate, source, report, on_batch
        self.plans: dict[str, ImportPlan] = {}
        self.header_tables: list[str] = []
        self.truncated: set[str] = set()
        self.current: str | None = None
        self.on_counts: OnCounts | None = None
        self.final_check: FinalCheck = check_foreign_keys
        self.allow_lossy = False
        # Where deletes cascade, nothing is written before every imported table is emptied, which
        # needs their list: the header (JSON may carry it last) or, failing that, the end of input.
        self.cascading = conn.deferred_foreign_keys
        self.emptied_all = False
        self.written: set[str] = set()  # tables whose rows are all in the database (parents ready)
        self.direct: set[str] = set()  # tables written as they arrive
        self.spool: Spool | None = None
        self.completeness: Completeness | None = None
        self.accept_altered = False
        # Where the target stores rows in key order: the table whose rows are being sorted.
        self.sorting: tuple[str, KeyOrder] | None = None
        # While rows arrive: the table's load kept open from batch to batch, where the driver can.
        self.streams: OpenStream | None = None

    async def run(self, events: AsyncIterator[Event | CanonicalBatch]) -> None:
        send, receive = channel()

        async def produce() -> None:
            async with send:
                async for event in events:
                    item = self._prepare(event)
                    if item is not None:
                        for ready in self._in_key_order(item):
                            await send.send(ready)
                if self.sorting is not None and self.sorting[1].rows:
                    await send.send(("sorted", *self.sorting, 0))

        async def consume() -> None:
            async with receive, OpenStream(self.conn) as self.streams:
                async for kind, name, rows, size in receive:
                    if kind == "sorted":  # ``rows``: a table's KeyOrder, held back until the table ended
                        held = "lines" if rows.writer else "rows"
                        for sorted_rows, share in sorted_batches(rows):
                            await self._apply(held, name, sorted_rows, share, rows.writer)
                    else:
                        await self._apply(kind, name, rows, size)

        async with open_spool() as self.spool:
            await run_stages(produce, consume)
            self.streams = None  # the spooled tables, if any, go batch by batch
            await self._finish()

    def _prepare(self, event: Event | CanonicalBatch) -> tuple[str, str, list, int] | None:  # type: ignore[type-arg]
        if self.completeness:
            self.completeness.observe(event)
        if isinstance(event, Trailer):
            return None
        if isinstance(event, Metadata):
            self.report.metadata = event.values
            self.header_tables = [n for n in event.table_names if n in self.live and self._selected(n)]
            if self.on_counts:
                self.on_counts(_announced_counts(event, self._selected))
            return ("header", "", [], 0)
        if isinstance(event, TableStart):
            name = self._table(event.table, event.line)
            return ("start", name, [], 0) if name else None
        if isinstance(event, CanonicalBatch):
            name = self._table(event.layout.name, None)
            if name is None:
                return None
            rows = self.plans[name].from_canonical(event.layout, event.rows, json_text=event.json_text)
            return ("rows", name, rows, event.size)
        name = self._table(event.table, event.first_line)
        if name is None:
            return None
        plan = self.plans[name]
        canonical = self.completeness.canonical(event) if self.completeness else None
        rows = plan.build_batch(event, self.source, canonical)
        return ("rows", name, rows, event.size)

    def _in_key_order(self, item: tuple[str, str, list, int]) -> list[tuple[str, str, Any, int]]:  # type: ignore[type-arg]
        """Where the target stores rows in key order, a table's rows are held back (sorted, spooled
        when large) and sent as one ``sorted`` item when its table ends; the writer loads them while
        this stage goes on reading the next table."""
        kind, name, rows, size = item
        ready: list[tuple[str, str, Any, int]] = []
        if self.sorting is not None and (kind != "rows" or name != self.sorting[0]):
            if self.sorting[1].rows:
                ready.append(("sorted", *self.sorting, 0))
            self.sorting = None
        if kind == "rows" and self.conn.capabilities.clustered_by_key:
            if self.sorting is None:
                key_at = text_key_position(name, self.plans[name].columns)
                if key_at is not None:
                    assert self.spool is not None
                    # Lines where the target takes them, except where rows may have to wait in the
                    # spool for the tables they cascade into (``_apply``): that spool holds rows.
                    writer = None if self.cascading else self.conn.line_writer(name, self.live[name])
                    self.sorting = (name, KeyOrder(self.spool, key_at, writer=writer))
            if self.sorting is not None and not self.sorting[1].passes(rows):
                self.sorting[1].add(rows, size)
                return ready
        ready.append(item)
        return ready

    def _selected(self, name: str) -> bool:
        return self.wanted is None or name in self.wanted

    def _table(self, name: str, line: int | None) -> str | None:
        if not self._selected(name):
            return None
        if name not in self.plans:
            check_table_name(name, source=self.source, line=line)
            if name not in self.live:
                raise InputError("unknown table", source=self.source, line=line, table=name)
            self.plans[name] = ImportPlan(name, self.live[name], self.conn.capabilities, self.report.warn)
            self.report.table(name)
        return name

    async def _apply(self, kind: str, name: str, rows: list, size: int,  # type: ignore[type-arg]
                     writer: LineWriter | None = None) -> None:
        if self.streams and (kind != "rows" or name != self.streams.table):
            await self.streams.close()  # before the connection does anything else
        if kind == "header":
            if self.cascading:  # the header lists the imported tables: empty them all now
                await self._empty_all()
            return
        if name != self.current:  # per-table timing: a table ends when the next one starts
            if self.current is not None:
                self.report.table(self.current).finish()
                if self.current in self.direct:
                    self.written.add(self.current)
            self.current = name
        if self.cascading and not self._writes_now(name):
            if kind == "rows" and rows:
                assert self.spool is not None
                self.spool.add(name, rows, size)
            return
        await self._truncate(name)
        await self._write(name, rows, size, writer)

    def _writes_now(self, name: str) -> bool:
        """Where deletes cascade: may ``name``'s rows go in as they arrive? Decided once per table."""
        assert self.spool is not None
        if name in self.direct or self.spool.holds(name):
            return name in self.direct
        # Before the imported tables are all emptied, a later DELETE could cascade into (or SET NULL
        # in) rows just written; where FKs are checked per row, imported parents must be in first.
        ready = self.emptied_all and not (self.conn.parents_first and self._parents_pending(name))
        if ready:
            self.direct.add(name)
        return ready

    def _parents_pending(self, name: str) -> bool:
        imported = set(self.plans) | set(self.header_tables)
        return any(p in imported and p not in self.written for p in _parents(name))

    async def _write(self, name: str, rows: list, size: int,  # type: ignore[type-arg]
                     writer: LineWriter | None = None) -> None:
        """Write ``rows``, or the lines ``writer`` made of them."""
        if rows:
            plan = self.plans[name]
            try:
                # JSON text the server refused is named from its batch (below): such rows go batch by batch.
                streamed = (writer is None and not plan.json_text and self.streams is not None
                            and await self.streams.write(name, plan.columns, rows, size))
                if not streamed:
                    if self.streams:
                        await self.streams.close()
                    await (writer.write(rows) if writer else self.conn.write(name, plan.columns, rows))
            except DatabaseError:
                if plan.json_text and writer is None:  # the server refused JSON text: name it, as a parse would
                    plan.name_bad_json(rows)
                raise
            self.report.table(name).rows += len(rows)
            self.report.table(name).bytes += size
            if self.on_batch:
                self.on_batch(name, len(rows), size)

    async def _empty_all(self) -> None:
        """Empty every imported table children first, so no cascade reaches a table emptied later."""
        for name in delete_order([*self.header_tables, *self.plans]):
            self._table(name, None)
            await self._truncate(name)
        self.emptied_all = True

    async def _load_spooled(self) -> None:
        """Spooled tables, parents first: each one's parents are in the database by its turn."""
        assert self.spool is not None
        for name in insert_order(self.spool.tables):
            for rows, size in self.spool.batches(name):
                await self._write(name, rows, size)
            self.written.add(name)

    async def _truncate(self, name: str) -> None:
        if self.truncate and name not in self.truncated:
            await self._refuse_cascade_into_loaded(name)
            self.truncated.add(name)
            await self.conn.execute(f"DELETE FROM {self.conn.capabilities.quote(name)}")
            self.report.table(name).truncated = True

    async def _refuse_cascade_into_loaded(self, parent: str) -> None:
        """Where FK checks could only be deferred, emptying a parent after its children were loaded
        would cascade into the loaded rows: refuse (and so roll back) rather than lose them. Only a
        table missing from the input's own list of tables can still get here."""
        if not self.conn.deferred_foreign_keys:
            return
        hit = [t for t in self.plans if self.report.table(t).rows and parent in _parents(t)]
        q = self.conn.capabilities.quote
        if hit and await self.conn.fetch(f"SELECT 1 FROM {q(parent)} LIMIT 1"):
            raise IntegrityFailure(
                f"table {parent}: the input lists {', '.join(hit)} before it but not in its metadata, and "
                f"{self.conn.capabilities.deferred_foreign_keys_reason}, so emptying {parent} would cascade "
                "into rows just loaded; nothing was changed. List every table in the metadata or use copy")

    async def _finish(self) -> None:
        if self.cascading and not self.emptied_all:  # no header: the input itself listed the tables
            await self._empty_all()
        for name in self.header_tables:  # tables listed with no rows (NDJSON): emptied too
            if name not in self.plans:
                self._table(name, None)
            await self._truncate(name)
        if not self.plans:
            raise InputError("the input holds no recognised table; nothing was changed", source=self.source)
        if self.completeness:  # before COMMIT: a file cut short or altered rolls back
            check_import(self.completeness, self.report.warn, accept_altered=self.accept_altered)
        if self.current:
            self.report.table(self.current).finish()
        if self.cascading:
            await self._load_spooled()
        for name in insert_order(list(self.plans)):
            plan = self.plans[name]
            if plan.autoincrement:
                await self.conn.reset_sequence(name, plan.autoincrement)
        self._settle_losses()
        await self.final_check(self.conn, self.plans.keys(), self.live)

    def _settle_losses(self) -> None:
        """Refuse (before COMMIT, so nothing changes) when any column would store values changed,
        naming every such column with its count; with ``allow_lossy`` report them instead."""
        lost = [(name, loss) for name, plan in self.plans.items() for loss in plan.losses if loss.count]
        if not lost:
            return
        if self.allow_lossy:
            for name, loss in lost:
                self.report.warn(f"{name}.{loss.column} ({loss.target_type}): stored {loss.describe()} changed "
                                 "(--allow-lossy)")
            return
        first_table, first = lost[0]
        others = "; ".join(f"{name}.{loss.column} ({loss.target_type}): {loss.describe()}" for name, loss in lost[1:])
        raise InputError(
            f"the target column ({first.target_type}) would store {first.describe()} changed"
            + (f"; also {others}" if others else "")
            + f" — {len(lost)} column{'s' if len(lost) != 1 else ''} in all; nothing was changed. Widen the columns "
            "with `memoria-stream migrate run widen_mysql_columns`, or pass --allow-lossy to load the values changed",
            source=self.source, table=first_table, column=first.column)


def _parents(name: str) -> tuple[str, ...]:
    table = get_table(name)
    return table.parents if table else ()


def _announced_counts(meta: Metadata, selected: Callable[[str], bool]) -> dict[str, int]:
    tables = meta.values.get("tables")
    entries = tables if isinstance(tables, list) else []
    return {t["name"]: t["row_count"] for t in entries if isinstance(t, dict) and isinstance(t.get("name"), str)
            and isinstance(t.get("row_count"), int) and selected(t["name"])}


# The FK check reads a parent's keys in one scan (where the server can be told to) only when the
# parent holds at most this many rows per row of the child: beyond, a probe per child row reads less.
SCAN_PARENT_ROWS_PER_CHILD_ROW = 10


async def check_foreign_keys(conn: Connection, touched: Collection[str], live: dict[str, list[LiveColumn]]) -> None:
    """Fail (and so roll back) when a loaded or emptied table leaves a catalogue FK dangling.

    Each child table is read once for all its foreign keys (past the server's cache, a scan is the
    cost); only when that finds a dangling value are they asked one by one, to name it."""
    estimates = await row_estimates(conn)
    for child_name in live:
        child = get_table(child_name)
        if child is None:
            continue
        live_cols = {c.name for c in live[child_name]}
        checked = [fk for fk in child.foreign_keys if fk.parent in live and set(fk.columns) <= live_cols
                   and (child_name in touched or fk.parent in touched)]
        if not checked:
            continue
        scan = key_scan_pays(conn.capabilities.key_scan, estimates, child_name, checked)
        if await _dangling(conn, child_name, checked, scan=scan):
            for fk in checked:
                rows = await _dangling(conn, child_name, [fk], fk.columns[0])
                if rows:
                    raise IntegrityFailure(
                        f"table {child_name}, column {fk.columns[0]}: value {rows[0][0]!r} has no row in "
                        f"{fk.parent}.{fk.parent_columns[0]}; nothing was changed")


async def row_estimates(conn: Connection) -> dict[str, int]:
    """The server's approximate row count of each table, where a key scan needs them (else none)."""
    if conn.capabilities.key_scan is None:
        return {}
    rows = await conn.fetch(conn.capabilities.key_scan.row_estimates_sql)
    return {name: int(count) for name, count in rows if count is not None}


def key_scan_pays(scan: KeyScan | None, estimates: dict[str, int], child: str,
                  fks: Sequence[ForeignKey]) -> KeyScan | None:
    """``scan``, where no parent of ``fks`` is much larger than ``child``: reading every key of a
    far larger parent would cost more than probing it once per child row. Estimates only choose the
    plan; both plans find the same rows."""
    if scan is None or child not in estimates:
        return None
    most = SCAN_PARENT_ROWS_PER_CHILD_ROW * estimates[child]
    return scan if all(estimates.get(fk.parent, most + 1) <= most for fk in fks) else None


async def _dangling(conn: Connection, child: str, fks: Sequence[ForeignKey],
                    column: str | None = None, *, scan: KeyScan | None = None) -> list[tuple[Any, ...]]:
    """A row of ``child`` (its ``column``, or 1) whose value of any of ``fks`` has no parent row."""
    q = conn.capabilities.quote
    hint = scan.table_hint if scan else ""
    missing = " OR ".join(
        f"(c.{q(fk.columns[0])} IS NOT NULL AND NOT EXISTS "
        f"(SELECT 1 FROM {q(fk.parent)} p{hint} WHERE p.{q(fk.parent_columns[0])} = c.{q(fk.columns[0])}))"
        for fk in fks)
    prefix = scan.statement_prefix if scan else ""
    return await conn.fetch(f"{prefix}SELECT {f'c.{q(column)}' if column else '1'} FROM {q(child)} c "
                            f"WHERE {missing} LIMIT 1")
