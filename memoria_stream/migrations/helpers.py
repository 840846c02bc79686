"""Building blocks for the migration scripts in ``scripts/migrations/``.

Every helper inspects the live database before it changes anything, so each script can run any
number of times. The target shape is the catalogue (``catalog.py``): column types come from the
backend's capabilities and index names are the catalogue's. Each step runs in its own transaction
where the backend can roll DDL back (SQLite, PostgreSQL); MySQL commits DDL implicitly, which is why
every step is written to be safe to repeat after a crash.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
from typing import Any, AsyncIterator, Awaitable, Callable, Iterable, Sequence

import anyio

from memoria_stream.model.catalog import Column, ForeignKey, Table, get_table, insert_order, utcnow
from memoria_stream.drivers import Connection, connect
from memoria_stream.drivers.base import LiveColumn
from memoria_stream.errors import ConfigurationError, DatabaseError, MemoriaStreamError
from memoria_stream.transfer.limits import loss_check
from memoria_stream.transfer.schema import create_index_sql, create_table_sql, ensure_tables
from memoria_stream.model.types import ColumnType
from memoria_stream.drivers.urls import mask_url

def say(message: str) -> None:
    """One progress line on stdout, flushed so the runner can stream it."""
    print(message, flush=True)


def run_script(main: Callable[[], Awaitable[None]]) -> None:
    """Run a script's ``main`` and exit: 0 on success, 1 with one stderr line on a known failure."""
    name = os.path.splitext(os.path.basename(sys.argv[0] or "migration"))[0]
    try:
        anyio.run(main)
    except MemoriaStreamError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"{name}: error: {first}", file=sys.stderr, flush=True)
        sys.exit(1)


def target_url() -> str:
    """The database the script works on: ``DATABASE_URL``, which the runner sets for the child."""
    url = os.environ.get("DATABASE_URL")
    if not url:
        raise ConfigurationError("DATABASE_URL is not set (run the script with `memoria-stream migrate run`)")
    return url


@contextlib.asynccontextmanager
async def open_target() -> AsyncIterator[Connection]:
    """``async with open_target() as conn``: a connection to ``DATABASE_URL``."""
    url = target_url()
    say(f"Target: {mask_url(url)}")
    async with connect(url) as conn:
        yield conn


@contextlib.asynccontextmanager
async def step(conn: Connection, what: str) -> AsyncIterator[None]:
    """One step: a transaction where DDL is transactional; a failure names the step."""
    try:
        if conn.capabilities.transactional_ddl:
            async with conn.transaction():
                yield
        else:
            yield
    except DatabaseError as exc:
        raise type(exc)(f"{what}: {exc}") from exc


# --- introspection -----------------------------------------------------------------------------

async def column_names(conn: Connection, table: str) -> list[str]:
    return [c.name for c in await conn.columns(table)]


async def foreign_keys(conn: Connection, table: str) -> set[tuple[str, str, str]]:
    """The live foreign keys of ``table`` as (column, parent table, parent column)."""
    return await conn.foreign_keys(table)


def catalog_table(name: str) -> Table:
    table = get_table(name)
    if table is None:  # a bug in a script, not the user's fault
        raise ConfigurationError(f"{name} is not a catalogue table")
    return table


def catalog_column(table: Table, name: str) -> Column:
    column = table.column(name)
    if column is None:
        raise ConfigurationError(f"{table.name}.{name} is not in the catalogue")
    return column


# --- tables ------------------------------------------------------------------------------------

def _with_parents(names: Iterable[str]) -> list[str]:
    wanted: list[str] = []
    pending = list(names)
    while pending:
        name = pending.pop()
        if name in wanted:
            continue
        wanted.append(name)
        table = get_table(name)
        pending.extend(table.parents if table else ())
    return insert_order(wanted)


async def create_table_if_missing(conn: Connection, table: str | Table) -> bool:
    """Create a table (and any missing catalogue parents) with its indexes; True when created."""
    if isinstance(table, str):
        table = catalog_table(table)
    existing = set(await conn.table_names())
    if table.name in existing:
        return False
    parents = _with_parents(table.parents)
    async with step(conn, f"create table {table.name}"):
        for name in (await ensure_tables(conn, parents, own_transaction=False)).created:
            say(f"{name}: created table")
        if get_table(table.name) is table:
            await ensure_tables(conn, [table.name], own_transaction=False)
        else:
            await conn.execute(create_table_sql(conn.capabilities, table))
            for statement in create_index_sql(conn.capabilities, table):
                await conn.execute(statement)
    say(f"{table.name}: created table")
    return True


# --- columns -----------------------------------------------------------------------------------

def sql_literal(value: Any) -> str:
    """A constant usable in DDL (SQLite does not accept a bound parameter in a DEFAULT clause)."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    raise ConfigurationError(f"no SQL literal for default {value!r}")


def _literal_default(column: Column) -> Any:
    default = column.default
    return None if callable(default) else default


def _column_ddl(conn: Connection, table: Table, column: Column) -> str:
    caps = conn.capabilities
    parts = [caps.quote(column.name), caps.column_type(column.type, column.length)]
    default = _literal_default(column)
    if default is not None:
        parts.append(f"DEFAULT {sql_literal(default)}")
        if not column.nullable:
            parts.append("NOT NULL")
    fk = _foreign_key_for(table, column.name)
    if fk is not None and not caps.add_foreign_key_later:
        # SQLite cannot add a constraint later; an inline REFERENCES on a nullable column is allowed.
        parts.append(f"REFERENCES {caps.quote(fk.parent)} ({caps.quote(fk.parent_columns[0])}) "
                     f"ON DELETE {fk.on_delete}")
    return " ".join(parts)


def _foreign_key_for(table: Table, column: str) -> ForeignKey | None:
    return next((fk for fk in table.foreign_keys if fk.columns == (column,)), None)


async def add_column_if_missing(conn: Connection, table: str, column: str) -> bool:
    """Add one catalogue column; existing rows get its default (timestamps: now). True when added."""
    spec = catalog_table(table)
    col = catalog_column(spec, column)
    added = column not in await column_names(conn, table)
    if added:
        q = conn.capabilities.quote
        async with step(conn, f"add {table}.{column}"):
            await conn.execute(f"ALTER TABLE {q(table)} ADD COLUMN {_column_ddl(conn, spec, col)}")
        say(f"{table}: added column {column}")
    if col.type is ColumnType.TIMESTAMP:
        # Also on a re-run: MySQL commits the ADD COLUMN at once, so a crash may have left NULLs behind.
        await _complete_timestamp(conn, table, col)
    return added


async def _complete_timestamp(conn: Connection, table: str, column: Column) -> None:
    """Back-fill NULLs with now (naive UTC, bound: CURRENT_TIMESTAMP's zone differs per server),
    then make the column NOT NULL when the catalogue says so and the backend can alter it."""
    caps, q = conn.capabilities, conn.capabilities.quote
    now = caps.encoders.get(ColumnType.TIMESTAMP, lambda v: v)(utcnow())
    async with step(conn, f"back-fill {table}.{column.name}"):
        await conn.execute(
            f"UPDATE {q(table)} SET {q(column.name)} = {caps.placeholders(1)} WHERE {q(column.name)} IS NULL", now)
    live = next(c for c in await conn.columns(table) if c.name == column.name)
    if live.nullable and not column.nullable and caps.set_not_null is not None:
        await set_not_null(conn, table, column)


async def set_not_null(conn: Connection, table: str, column: Column) -> None:
    """Make a back-filled column NOT NULL (where ``capabilities.set_not_null`` says how: SQLite
    cannot alter a column, so callers skip it there)."""
    caps, q = conn.capabilities, conn.capabilities.quote
    if caps.set_not_null is None:
        raise ConfigurationError(f"{table}.{column.name}: this database cannot make a column NOT NULL")
    clause = caps.set_not_null.format(column=q(column.name), definition=caps.column_type(column.type, column.length))
    async with step(conn, f"set {table}.{column.name} NOT NULL"):
        await conn.execute(f"ALTER TABLE {q(table)} {clause}")
    say(f"{table}: {column.name} is now NOT NULL")


async def ensure_indexes(conn: Connection, table: str, involving: Sequence[str] | None = None) -> list[str]:
    """Create the catalogue indexes of ``table`` that are missing and whose columns all exist.

    With ``involving``, only indexes that cover one of those columns are considered.
    """
    spec = catalog_table(table)
    live, existing = set(await column_names(conn, table)), set(await conn.index_names(table))
    created = []
    for index in spec.indexes:
        if index.name in existing or not set(index.columns) <= live:
            continue
        if involving is not None and not set(index.columns) & set(involving):
            continue
        statement = create_index_sql(conn.capabilities, dataclasses.replace(spec, indexes=(index,)))[0]
        async with step(conn, f"create index {index.name}"):
            await conn.execute(statement)
        say(f"{table}: created index {index.name}")
        created.append(index.name)
    return created


async def ensure_foreign_key(conn: Connection, table: str, column: str) -> bool:
    """Add the catalogue FK on ``column`` when it is missing (PostgreSQL/MySQL; SQLite adds it inline)."""
    fk = _foreign_key_for(catalog_table(table), column)
    if fk is None or not conn.capabilities.add_foreign_key_later:
        return False
    if fk.parent not in await conn.table_names():
        return False
    if any(c == column for c, _, _ in await foreign_keys(conn, table)):
        return False
    q = conn.capabilities.quote
    name = f"fk_{table}_{column}"
    async with step(conn, f"add foreign key {name}"):
        await conn.execute(
            f"ALTER TABLE {q(table)} ADD CONSTRAINT {q(name)} FOREIGN KEY ({q(column)}) "
            f"REFERENCES {q(fk.parent)} ({q(fk.parent_columns[0])}) ON DELETE {fk.on_delete}"
            f"{conn.capabilities.foreign_key_suffix}")
    say(f"{table}: added foreign key {column} -> {fk.parent}")
    return True


async def ensure_columns(conn: Connection, table: str, columns: Sequence[str]) -> None:
    """Bring ``columns`` of ``table`` to the catalogue's shape: the table, columns, indexes, FKs.

    A missing table is created whole from the catalogue. Indexes go before foreign keys so that
    MySQL uses the catalogue index for the FK instead of creating one of its own.
    """
    if await create_table_if_missing(conn, table):
        return
    added = [c for c in columns if await add_column_if_missing(conn, table, c)]
    await ensure_indexes(conn, table, involving=columns)
    for column in columns:
        await ensure_foreign_key(conn, table, column)
    if not added:
        say(f"{table}: {', '.join(columns)} already present")


async def ensure_table_shape(conn: Connection, table: str) -> None:
    """Create ``table`` from the catalogue, or add whatever catalogue columns and indexes it lacks."""
    if await create_table_if_missing(conn, table):
        return
    spec = catalog_table(table)
    live = set(await column_names(conn, table))
    missing = [c for c in spec.column_names if c not in live]
    for column in missing:
        await add_column_if_missing(conn, table, column)
    await ensure_indexes(conn, table)
    for fk in spec.foreign_keys:
        await ensure_foreign_key(conn, table, fk.columns[0])
    if not missing:
        say(f"{table}: every catalogue column present")


async def widen_columns(conn: Connection, table: str) -> list[str]:
    """Give every catalogue column of ``table`` that keeps less than its values hold (``limits.loss_check``:
    DATETIME without fractions, FLOAT, TEXT) the type memoria-stream creates it with (MySQL:
    ``DATETIME(6)``, ``DOUBLE``, ``LONGTEXT``), keeping its rows, NULL-ability and default.

    One ALTER per table rebuilds it once. Columns already wide, missing tables and backends whose
    columns keep every value (``modify_column`` is ``None``) are left alone: safe to repeat."""
    caps = conn.capabilities
    spec = get_table(table)
    if caps.modify_column is None or spec is None:
        return []
    narrow = [(live, column) for live in await conn.columns(table)
              if (column := spec.column(live.name)) is not None and loss_check(live, column.type) is not None]
    if not narrow:
        return []
    q = caps.quote
    clauses = [caps.modify_column.format(column=q(live.name), definition=_wide_definition(conn, live, column))
               for live, column in narrow]
    async with step(conn, f"widen {table}"):
        await conn.execute(f"ALTER TABLE {q(table)} {', '.join(clauses)}")
    widened = [live.name for live, _ in narrow]
    say(f"{table}: widened {', '.join(widened)}")
    return widened


def _wide_definition(conn: Connection, live: LiveColumn, column: Column) -> str:
    """The column's wide type with its live NULL-ability and default (a CURRENT_TIMESTAMP default
    takes the column's new precision, which MySQL requires to match)."""
    definition = conn.capabilities.ddl_types[column.type] + ("" if live.nullable else " NOT NULL")
    if live.default is not None:
        default = live.default
        if column.type is ColumnType.TIMESTAMP and default.lower().startswith("current_timestamp"):
            default = "CURRENT_TIMESTAMP(6)"
        definition += f" DEFAULT {default}"
    return definition


async def drop_column_if_present(conn: Connection, table: str, column: str) -> bool:
    """Drop a column (and, on SQLite, the indexes that cover it first, which SQLite requires)."""
    if column not in await column_names(conn, table):
        return False
    q = conn.capabilities.quote
    async with step(conn, f"drop {table}.{column}"):
        for index in await conn.indexes_blocking_drop(table, column):
            await conn.execute(f"DROP INDEX {q(index)}")
        await conn.execute(f"ALTER TABLE {q(table)} DROP COLUMN {q(column)}")
    say(f"{table}: dropped column {column}")
    return True
