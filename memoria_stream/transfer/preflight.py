"""Preflight (``--dry-run``): every problem a load would meet, found in one pass, with the target untouched.

The input is read through the same plans and checks the real load uses (``ImportPlan``: names,
types, strict values, the live columns' limits, lossy columns; ``Completeness``: header and trailer).
Where the load stops at the first problem, the preflight records each failing row as a problem and
goes on. Keys are spooled to a private temporary SQLite file (never Python sets, so memory stays
flat on any input): primary-key duplicates inside the input, against the target's rows under
``--no-truncate``, and foreign keys resolved against the input and the rows the target keeps.

The target only ever sees reads: table and column lists and ``SELECT``s of key columns.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable, Sequence

import orjson

from memoria_stream import __version__
from memoria_stream.codecs import DEFAULT_MAX_LINE
from memoria_stream.codecs.base import Event, Metadata, RowBatch, TableStart, Trailer
from memoria_stream.codecs.streams import Source, source_name
from memoria_stream.drivers import connect
from memoria_stream.drivers.base import Capabilities, Connection, LiveColumn
from memoria_stream.drivers.urls import mask_url, parse_url, resolve_url
from memoria_stream.errors import InputError
from memoria_stream.model.catalog import EXPORT_ORDER, ForeignKey, Index, Table, get_table, insert_order
from memoria_stream.transfer.completeness import Completeness
from memoria_stream.transfer.export import BATCH_ROWS, resolve_tables
from memoria_stream.transfer.files import open_events
from memoria_stream.transfer.load import CanonicalBatch, OnCounts
from memoria_stream.transfer.pipeline import fewer_collections
from memoria_stream.transfer.preflight_keys import KeyStore, Place, open_key_store
from memoria_stream.transfer.preflight_report import MAX_PROBLEMS, PreflightReport, Problem, TablePlan, key_text, shorten
from memoria_stream.transfer.plans import ImportPlan, check_table_name, export_plan
from memoria_stream.transfer.reports import RunReport
from memoria_stream.transfer.schema import live_tables
from memoria_stream.model.types import Row

_KEY_READ_ROWS = 10_000


# --- the checks -----------------------------------------------------------------------------------

def planned_columns(table: Table, caps: Capabilities) -> list[LiveColumn]:
    """The columns a table the load would create will have: what its plan is checked against."""
    return [LiveColumn(c.name, c.type, c.nullable and not c.primary_key, caps.column_type(c.type, c.length))
            for c in table.columns]


@dataclass
class _Options:
    source: str
    tables: Sequence[str] | None = None
    truncate: bool = True
    create_missing: bool = True
    allow_lossy: bool = False
    check_completeness: bool = False
    accept_altered: bool = False
    max_problems: int = MAX_PROBLEMS
    on_counts: OnCounts | None = None
    on_batch: Callable[[str, int, int], None] | None = None


class _Preflight:
    """Mirrors ``load._Loader`` with every raise turned into a recorded problem and no write."""

    def __init__(self, conn: Connection, live: dict[str, list[LiveColumn]], keys: KeyStore, opts: _Options) -> None:
        self.conn, self.live, self.keys, self.opts = conn, live, keys, opts
        self.wanted = set(opts.tables) if opts.tables else None
        self.report = PreflightReport(opts.source, mask_url(conn.url.raw), opts.max_problems)
        self.plans: dict[str, ImportPlan] = {}
        self.refused: set[str] = set()  # tables named once as a problem; their rows are skipped
        self.header_tables: list[str] = []
        self.rows_seen: dict[str, int] = {}
        # Where the load creates missing catalogue tables, they are checked as they would be created.
        self.created = [n for n in EXPORT_ORDER if n not in live and self._selected(n)] if opts.create_missing else []
        self.completeness = Completeness(opts.source, self._selected) if opts.check_completeness else None
        self.cut_short = False  # the input stopped parsing: counts against its header mean nothing

    def _selected(self, name: str) -> bool:
        return self.wanted is None or name in self.wanted

    def _columns(self, name: str) -> list[LiveColumn] | None:
        if name in self.live:
            return self.live[name]
        table = get_table(name)
        return planned_columns(table, self.conn.capabilities) if table and name in self.created else None

    async def run(self, events: AsyncIterator[Event | CanonicalBatch]) -> PreflightReport:
        if self.wanted:
            for name in sorted(n for n in self.wanted if self._columns(n) is None):
                self.report.add(Problem("unknown table", table=name))
        try:
            async for event in events:
                self.observe(event)
        except InputError as exc:  # the input no longer parses: nothing after this point can be read
            self.cut_short = True
            self.report.add(Problem(exc.reason, table=exc.table, column=exc.column, line=exc.line, row=exc.row))
        await self.finish()
        return self.report

    def observe(self, event: Event | CanonicalBatch) -> None:
        if self.completeness:
            try:
                self.completeness.observe(event)
            except InputError as exc:
                self.report.add(Problem(exc.reason, line=exc.line))
        if isinstance(event, Trailer):
            return
        if isinstance(event, Metadata):
            self.header_tables = [n for n in event.table_names if self._columns(n) is not None and self._selected(n)]
            if self.opts.on_counts:
                self.opts.on_counts(_announced(event, self._selected))
        elif isinstance(event, TableStart):
            self._table(event.table, event.line)
        elif isinstance(event, CanonicalBatch):
            self._canonical(event)
        else:
            self._batch(event)

    def _table(self, name: Any, line: int | None) -> str | None:
        if not isinstance(name, str) or not self._selected(name) or name in self.refused:
            return None
        if name not in self.plans:
            try:
                check_table_name(name, source=self.opts.source, line=line)
                columns = self._columns(name)
                if columns is None:
                    raise InputError("unknown table", source=self.opts.source, line=line, table=name)
            except InputError as exc:
                self.refused.add(name)
                self.report.add(Problem(exc.reason, table=exc.table or name, line=line))
                return None
            self.plans[name] = ImportPlan(name, columns, self.conn.capabilities, self.report.warn)
            self.report.tables[name] = TablePlan(name, self._action(name))
        return name

    def _action(self, name: str) -> str:
        return "create" if name not in self.live else "empty" if self.opts.truncate else "append"

    def _batch(self, batch: RowBatch) -> None:
        name = self._table(batch.table, batch.first_line)
        if name is None:
            return
        plan = self.plans[name]
        places = [(batch.lines[i] if batch.lines else batch.first_line + i) for i in range(len(batch.rows))]
        counts = [loss.count for loss in plan.losses]
        try:
            canonical = self.completeness.canonical(batch) if self.completeness else None
            built = plan.build_batch(batch, self.opts.source, canonical)  # the load's own fast path
        except InputError:
            for loss, count in zip(plan.losses, counts):  # rows before the bad one were counted once already
                loss.count = count
            built, kept_places = [], []
            for obj, where in zip(batch.rows, places):
                try:
                    built.append(plan.build(obj, where, self.opts.source, batch.by_row))
                    kept_places.append(where)
                except InputError as exc:
                    self._row_problem(exc, name, obj)
            places = kept_places
        self._account(name, plan, built, [(None, w) if batch.by_row else (w, None) for w in places], batch.size)

    def _canonical(self, batch: CanonicalBatch) -> None:
        name = self._table(batch.layout.name, None)
        if name is None:
            return
        plan = self.plans[name]
        first = self.rows_seen.get(name, 0) + 1
        self.rows_seen[name] = first - 1 + len(batch.rows)
        counts = [loss.count for loss in plan.losses]
        places: list[Place] = [(None, first + i) for i in range(len(batch.rows))]
        try:
            built = plan.from_canonical(batch.layout, batch.rows)
        except InputError:
            for loss, count in zip(plan.losses, counts):
                loss.count = count
            built, kept = [], []
            for row, place in zip(batch.rows, places):
                try:
                    built += plan.from_canonical(batch.layout, [row])
                    kept.append(place)
                except InputError as exc:
                    self.report.add(Problem(exc.reason, table=name, row=place[1],
                                            key=key_text(_canonical_key(batch, row, name))))
            places = kept
        self._account(name, plan, built, places, batch.size)

    def _row_problem(self, exc: InputError, name: str, obj: Any) -> None:
        table = get_table(name)
        key = obj.get(table.primary_key[0]) if table and isinstance(obj, dict) else None
        value = shorten(obj[exc.column]) if exc.column and isinstance(obj, dict) and exc.column in obj else None
        if isinstance(key, (str, int)):  # its children still find it: one cause, one problem
            self.keys.add_keys(name, [(key, exc.line, exc.row)])
        self.report.add(Problem(exc.reason, table=name, column=exc.column, key=key_text(key), line=exc.line,
                                row=exc.row, value=value))

    def _account(self, name: str, plan: ImportPlan, rows: list[Row], places: list[Place], size: int) -> None:
        """Count the good rows, check them as the target's constraints would, spool their keys
        (reporting repeats) and their references."""
        self.report.tables[name].rows += len(rows)
        if self.opts.on_batch and rows:
            self.opts.on_batch(name, len(rows), size)
        table = get_table(name)
        if table is None or not rows:
            return
        pk = plan.columns.index(table.primary_key[0]) if table.primary_key[0] in plan.columns else None
        self._check_constraints(table, plan, rows, places, pk)
        if pk is not None:
            items = [(row[pk], line, rown) for row, (line, rown) in zip(rows, places) if row[pk] is not None]
            self._record_keys(name, name, table.primary_key[0], "duplicate primary key", items)
        for index in unique_indexes(table):
            if all(c in plan.columns for c in index.columns):
                at = [plan.columns.index(c) for c in index.columns]
                items = [(_unique_value(row, at), line, rown) for row, (line, rown) in zip(rows, places)
                         if all(row[i] is not None for i in at)]  # NULLs never collide in SQL
                self._record_keys(name, _unique_space(name, index), ", ".join(index.columns),
                                  f"duplicate value of unique {index.name}", items)
        self._spool_references(name, table, plan, rows, places, pk)

    def _check_constraints(self, table: Table, plan: ImportPlan, rows: list[Row], places: list[Place],
                           pk: int | None) -> None:
        for check in table.checks:
            if check.column not in plan.columns:
                continue
            at = plan.columns.index(check.column)
            for row, (line, rown) in zip(rows, places):
                if not check.allows(row[at]):
                    self.report.add(Problem(f"breaks the check {check.name} ({check.expression})", table=table.name,
                                            column=check.column, key=key_text(row[pk]) if pk is not None else None,
                                            line=line, row=rown, value=shorten(row[at])))

    def _record_keys(self, name: str, space: str, column: str, what: str,
                     items: list[tuple[Any, int | None, int | None]]) -> None:
        for index, first_line, first_row in self.keys.add_keys(space, items):
            key, line, rown = items[index]
            first = f"line {first_line}" if first_line is not None else f"row {first_row}"
            self.report.add(Problem(f"{what} (first at {first})", table=name, column=column,
                                    key=key_text(key), line=line, row=rown))

    def _spool_references(self, name: str, table: Table, plan: ImportPlan, rows: list[Row], places: list[Place],
                          pk: int | None) -> None:
        refs = []
        for fk in table.foreign_keys:
            if fk.columns[0] not in plan.columns:
                continue
            at = plan.columns.index(fk.columns[0])
            refs += [(name, fk.columns[0], fk.parent, row[at], key_text(row[pk]) if pk is not None else None, line,
                      rown) for row, (line, rown) in zip(rows, places) if row[at] is not None]
        self.keys.add_refs(refs)

    async def finish(self) -> None:
        for name in self.header_tables:  # tables the load would empty though the input has no rows
            self._table(name, None)
        if not self.plans and not self.refused:
            self.report.add(Problem("the input holds no recognised table"))
        self._completeness()
        self._losses()
        await self._against_target()
        order = insert_order([*self.plans, *self.created])
        self.report.tables = {n: self.report.tables.get(n) or TablePlan(n, "create") for n in order}

    def _completeness(self) -> None:
        tracker = self.completeness
        if tracker is None or self.cut_short:
            return
        found = tracker.problems()
        if self.opts.accept_altered:
            if found:
                self.report.warn(f"--accept-altered: {len(found)} completeness problem(s) not counted")
            return
        for problem in found:
            self.report.add(Problem(problem.message, table=problem.table))
        if not found and tracker.unprovable():
            self.report.warn("the file announces no row counts and has no trailer: its completeness cannot be proven")

    def _losses(self) -> None:
        for name, plan in self.plans.items():
            for loss in (x for x in plan.losses if x.count):
                if self.opts.allow_lossy:
                    self.report.warn(f"{name}.{loss.column} ({loss.target_type}): would store {loss.describe()} "
                                     "changed (--allow-lossy)")
                else:
                    self.report.add(Problem(f"the target column ({loss.target_type}) would store {loss.describe()} "
                                            "changed (widen the column, or --allow-lossy)", table=name,
                                            column=loss.column))

    async def _against_target(self) -> None:
        """Keys and references against the rows the target keeps (read-only ``SELECT``s)."""
        emptied = set(self.plans) if self.opts.truncate else set()
        kept = [n for n in self.live if get_table(n) and n not in emptied]
        parents = {fk.parent for n in self.plans for fk in _foreign_keys(n)}
        for name in kept:  # the rows that stay: their keys resolve references and may collide
            if name in parents or name in self.plans:
                await self._spool_target_keys(name)
        if not self.opts.truncate:
            for name in [n for n in self.plans if n in self.live]:
                table = get_table(name)
                assert table is not None
                for key, line, rown in self.keys.kept_also_in_input(name):
                    self.report.add(Problem("primary key already in the target (--no-truncate)", table=name,
                                            column=table.primary_key[0], key=key_text(key), line=line, row=rown))
                await self._unique_against_target(table)
        for name in kept:  # kept rows whose parent the load empties must find it in the input
            await self._spool_target_refs(name, emptied)
        after = set(self.live) | set(self.created)
        for child, col, parent, value, key, line, rown in self.keys.dangling():
            if parent not in after:
                continue  # the check of the load only covers tables that exist
            from_input = line is not None or rown is not None  # a target row has no place in the input
            if from_input:
                self.report.add(Problem(f"no row in {parent} holds this value (neither in the input nor kept in "
                                        "the target)", table=child, column=col, key=key, line=line, row=rown,
                                        value=shorten(value)))
            else:
                self.report.add(Problem(f"a row the target keeps refers to {parent} {shorten(value)}, which the "
                                        "load removes", table=child, column=col, key=key))

    async def _spool_target_keys(self, name: str) -> None:
        table = get_table(name)
        assert table is not None
        column = table.primary_key[0]
        if column not in {c.name for c in self.live[name]}:
            return
        async for rows in self.conn.read(name, [column], batch_rows=_KEY_READ_ROWS):
            self.keys.add_kept(name, [r[0] for r in rows])

    async def _unique_against_target(self, table: Table) -> None:
        """Under ``--no-truncate``: input values of a unique index that rows of the target already hold."""
        present = {c.name for c in self.live[table.name]}
        for index in unique_indexes(table):
            if not all(c in present for c in index.columns):
                continue
            space = _unique_space(table.name, index)
            async for rows in self.conn.read(table.name, list(index.columns), batch_rows=_KEY_READ_ROWS):
                at = list(range(len(index.columns)))
                self.keys.add_kept(space, [_unique_value(r, at) for r in rows if None not in tuple(r)])
            for value, line, rown in self.keys.kept_also_in_input(space):
                self.report.add(Problem(f"value of unique {index.name} already in the target (--no-truncate)",
                                        table=table.name, column=", ".join(index.columns), key=shorten(value),
                                        line=line, row=rown))

    async def _spool_target_refs(self, name: str, emptied: set[str]) -> None:
        table = get_table(name)
        assert table is not None
        present = {c.name for c in self.live[name]}
        for fk in table.foreign_keys:
            if fk.parent not in emptied or fk.columns[0] not in present:
                continue
            pk = table.primary_key[0]
            async for rows in self.conn.read(name, [fk.columns[0], pk], batch_rows=_KEY_READ_ROWS):
                self.keys.add_refs([(name, fk.columns[0], fk.parent, r[0], key_text(r[1]), None, None)
                                    for r in rows if r[0] is not None])


def _foreign_keys(name: str) -> tuple[ForeignKey, ...]:
    table = get_table(name)
    return table.foreign_keys if table else ()



def unique_indexes(table: Table) -> list[Index]:
    """The unique indexes and constraints a load must not break (the primary key is checked apart)."""
    return [i for i in (*table.indexes, *table.unique_constraints) if i.unique]


def _unique_space(name: str, index: Index) -> str:
    return f"{name}#{index.name}"  # never a table's name: kept apart from primary keys in the store


def _unique_value(row: Row, at: list[int]) -> Any:
    """One index value as the store keeps it: the value itself, or JSON text for several columns."""
    if len(at) == 1:
        return row[at[0]]
    return orjson.dumps([row[i] for i in at], default=str).decode()


def _canonical_key(batch: CanonicalBatch, row: Row, name: str) -> Any:
    table = get_table(name)
    columns = batch.layout.columns
    return row[columns.index(table.primary_key[0])] if table and table.primary_key[0] in columns else None


def _announced(meta: Metadata, selected: Callable[[str], bool]) -> dict[str, int]:
    tables = meta.values.get("tables")
    entries = tables if isinstance(tables, list) else []
    return {t["name"]: t["row_count"] for t in entries if isinstance(t, dict) and isinstance(t.get("name"), str)
            and isinstance(t.get("row_count"), int) and selected(t["name"])}


async def preflight_events(conn: Connection, events: AsyncIterator[Event | CanonicalBatch],
                           opts: _Options) -> PreflightReport:
    """Everything a load of ``events`` into ``conn`` would meet; ``conn`` only ever sees reads."""
    started = time.perf_counter()
    live = await live_tables(conn)
    with open_key_store() as keys, fewer_collections():
        report = await _Preflight(conn, live, keys, opts).run(events)
    report.seconds = time.perf_counter() - started
    return report


# --- entry points -------------------------------------------------------------------------------

async def preflight_import(
    source: Source,
    *,
    database_url: str | None = None,
    format: str | None = None,
    tables: Sequence[str] | None = None,
    truncate: bool = True,
    source_label: str | None = None,
    max_line_bytes: int = DEFAULT_MAX_LINE,
    allow_lossy: bool = False,
    accept_altered: bool = False,
    max_problems: int = MAX_PROBLEMS,
    on_counts: OnCounts | None = None,
    on_batch: Callable[[str, int, int], None] | None = None,
) -> PreflightReport:
    """``import-data --dry-run``: what ``import_data`` with the same arguments would do, and every
    problem it would meet; the target is only read."""
    label = source_label or source_name(source)
    opts = _Options(label, tables, truncate=truncate, allow_lossy=allow_lossy, check_completeness=True,
                    accept_altered=accept_altered, max_problems=max_problems, on_counts=on_counts, on_batch=on_batch)
    async with open_events(source, label, format, max_line_bytes) as (_, events):
        async with _looking_at(resolve_url(database_url)) as conn:
            return await preflight_events(conn, events, opts)


async def preflight_copy(
    source_url: str,
    target_url: str,
    *,
    tables: Sequence[str] | None = None,
    truncate: bool = True,
    allow_lossy: bool = False,
    max_problems: int = MAX_PROBLEMS,
    batch_rows: int = BATCH_ROWS,
    on_counts: OnCounts | None = None,
    on_batch: Callable[[str, int, int], None] | None = None,
) -> PreflightReport:
    """``copy --dry-run``: the source read inside one snapshot through the copy's plans, checked
    against the target as ``copy`` would load it; the target is only read."""
    label = mask_url(source_url)
    opts = _Options(label, tables, truncate=truncate, allow_lossy=allow_lossy, max_problems=max_problems,
                    on_counts=on_counts, on_batch=on_batch)
    async with connect(source_url) as reader, _looking_at(target_url) as target, reader.snapshot():
        names = await resolve_tables(reader, tables, RunReport("copy"))
        opts.tables = names
        events = _source_events(reader, names, batch_rows)
        return await preflight_events(target, events, opts)


async def _source_events(conn: Connection, names: list[str], batch_rows: int) -> AsyncIterator[Event | CanonicalBatch]:
    counts = {}
    for name in names:
        rows = await conn.fetch(f"SELECT count(*) FROM {conn.capabilities.quote(name)}")
        counts[name] = int(rows[0][0])
    yield Metadata({"tables": [{"name": n, "row_count": c} for n, c in counts.items()],
                    "generator": f"memoria-stream {__version__}"})
    for name in names:
        plan = export_plan(name, await conn.columns(name), conn.capabilities)
        yield TableStart(name)
        async for raw in conn.read(name, plan.layout.columns, batch_rows=batch_rows):
            decoded: list[Row] = [tuple(r) for r in plan.decode(raw)]
            yield CanonicalBatch(plan.layout, decoded, sum(len(v) if isinstance(v, (str, bytes)) else 8
                                                           for row in decoded for v in row))


@contextlib.asynccontextmanager
async def _looking_at(target_url: str) -> AsyncIterator[Connection]:
    """The target opened read-only, so a dry run cannot write even by mistake; a database file that
    does not exist yet is checked as the empty database the load would create (and is not created)."""
    parsed = parse_url(target_url)
    stand_in = parsed.empty_stand_in() if parsed.file_missing else None
    async with connect(stand_in or parsed, read_only=stand_in is None) as conn:
        yield conn
