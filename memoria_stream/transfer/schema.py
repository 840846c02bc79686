"""DDL rendered from the catalogue for each backend, and the live-versus-catalogue comparison."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import AsyncIterator, Iterable, Sequence

from memoria_stream.model.catalog import Column, ForeignKey, Index, Table, get_table, insert_order
from memoria_stream.drivers import connect
from memoria_stream.drivers.base import Capabilities, Connection, LiveColumn
from memoria_stream.errors import DatabaseError
from memoria_stream.transfer.pipeline import run_stages


def column_definition(caps: Capabilities, column: Column) -> str:
    if column.autoincrement:
        return f"{caps.quote(column.name)} {caps.autoincrement_pk}"
    null = "" if column.nullable and not column.primary_key else " NOT NULL"
    return f"{caps.quote(column.name)} {caps.column_type(column.type, column.length)}{null}"


def create_table_sql(caps: Capabilities, table: Table, *, foreign_keys: bool = True) -> str:
    q = caps.quote
    parts = [column_definition(caps, c) for c in table.columns]
    parts.append(f"PRIMARY KEY ({', '.join(q(c) for c in table.primary_key)})")
    parts += [f"CONSTRAINT {q(u.name)} UNIQUE ({', '.join(q(c) for c in u.columns)})"
              for u in table.unique_constraints]
    parts += [f"CONSTRAINT {q(ck.name)} CHECK ({ck.expression})" for ck in table.checks]
    if foreign_keys:
        parts += [foreign_key_clause(caps, fk) for fk in table.foreign_keys]
    body = ",\n  ".join(parts)
    return f"CREATE TABLE {q(table.name)} (\n  {body}\n){caps.table_suffix}"


def foreign_key_clause(caps: Capabilities, fk: ForeignKey) -> str:
    q = caps.quote
    return (f"FOREIGN KEY ({', '.join(q(c) for c in fk.columns)}) REFERENCES {q(fk.parent)} "
            f"({', '.join(q(c) for c in fk.parent_columns)}) ON DELETE {fk.on_delete}{caps.foreign_key_suffix}")


def create_index_sql(caps: Capabilities, table: Table) -> list[str]:
    q = caps.quote
    exists = " IF NOT EXISTS" if caps.index_if_not_exists else ""
    return [
        f"CREATE {'UNIQUE ' if ix.unique else ''}INDEX{exists} {q(ix.name)} ON {q(table.name)} "
        f"({', '.join(q(c) for c in ix.columns)})"
        for ix in table.indexes
    ]


@dataclass
class SchemaReport:
    """What ``ensure_tables`` found and did."""

    created: list[str] = field(default_factory=list)


async def live_tables(conn: Connection) -> dict[str, list[LiveColumn]]:
    """The live columns of the catalogue tables the database holds; other tables are never loaded
    into, so they are not even described."""
    return {name: await conn.columns(name) for name in await conn.table_names() if get_table(name)}


async def ensure_tables(conn: Connection, names: Iterable[str], *, indexes: bool = True,
                        own_transaction: bool = True) -> SchemaReport:
    """Create every catalogue table in ``names`` that the database lacks (parents first).

    ``own_transaction=False`` when the caller already holds a transaction (e.g. a migration step)."""
    report = SchemaReport()
    existing = set(await conn.table_names())
    missing = [get_table(n) for n in insert_order(list(names)) if get_table(n) and n not in existing]
    if not missing:
        return report
    # One transaction where DDL is transactional: all or nothing, and one fsync instead of dozens.
    async with _ddl_transaction(conn, own_transaction):
        for table in missing:
            assert table is not None
            await conn.execute(create_table_sql(conn.capabilities, table))
            if indexes:
                for statement in create_index_sql(conn.capabilities, table):
                    await conn.execute(statement)
            report.created.append(table.name)
    return report


@contextlib.asynccontextmanager
async def _ddl_transaction(conn: Connection, wanted: bool) -> AsyncIterator[None]:
    if wanted and conn.capabilities.transactional_ddl:
        async with conn.transaction():
            yield
    else:
        yield


async def create_missing_indexes(conn: Connection, names: Sequence[str]) -> list[str]:
    """Build the catalogue indexes that ``names`` lack (after a bulk load, or a run cut short)."""
    built = []
    for name in names:
        table = get_table(name)
        if table is None or not table.indexes:
            continue
        present = set(await conn.index_names(name))
        columns = {c.name for c in await conn.columns(name)}
        # An older table may lack an indexed column: that index waits for its migration.
        statements = zip(table.indexes, create_index_sql(conn.capabilities, table))
        missing = [(index, sql) for index, sql in statements
                   if index.name not in present and columns.issuperset(index.columns)]
        if conn.capabilities.add_indexes_together and len(missing) > 1:
            await conn.execute(_add_indexes_sql(conn.capabilities, table, [index for index, _ in missing]))
        else:
            for _, statement in missing:
                await conn.execute(statement)
        built += [index.name for index, _ in missing]
    return built


async def create_missing_indexes_alongside(conn: Connection, names: Sequence[str]) -> None:
    """``create_missing_indexes`` outside any transaction, the tables (largest first) shared between
    ``conn`` and a second connection where the backend takes several writers: a server builds an
    index on one thread, so two builds at once keep two cores busy."""
    if not conn.capabilities.parallel_writers or len(names) < 2:
        await create_missing_indexes(conn, names)
        return
    waiting = list(names)

    async def build(on: Connection) -> None:
        while waiting:
            await create_missing_indexes(on, [waiting.pop(0)])

    async def build_alongside() -> None:
        async with contextlib.AsyncExitStack() as stack:
            try:
                other = await stack.enter_async_context(connect(conn.url))
            except DatabaseError:  # no connection to spare (max_connections…): ``conn`` builds them all
                return
            await build(other)

    await run_stages(build_alongside, lambda: build(conn))  # the first real error, not a group of them


def _add_indexes_sql(caps: Capabilities, table: Table, indexes: Sequence[Index]) -> str:
    q = caps.quote
    clauses = [f"ADD {'UNIQUE ' if ix.unique else ''}INDEX {q(ix.name)} ({', '.join(q(c) for c in ix.columns)})"
               for ix in indexes]
    return f"ALTER TABLE {q(table.name)} {', '.join(clauses)}"


async def drop_tables(conn: Connection, names: Sequence[str]) -> None:
    """Drop tables (children first); used to undo tables a failed run created."""
    for name in reversed(insert_order(list(names))):
        await conn.execute(f"DROP TABLE IF EXISTS {conn.capabilities.quote(name)}")
