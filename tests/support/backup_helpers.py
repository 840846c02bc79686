"""Shared set-up and read-back helpers for the backup and guard tests."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any, Sequence

from memoria_stream.model import catalog

from memoria_stream.transfer import schema
from memoria_stream.drivers import Connection, connect
from memoria_stream.model.types import ColumnType

T0 = datetime(2024, 5, 1, 12, 0, 0, 123456)


def encode(conn: Connection, ctype: ColumnType, value: Any) -> Any:
    encoder = conn.capabilities.encoders.get(ctype)
    return encoder(value) if encoder is not None and value is not None else value


async def prepare(url: str) -> None:
    """The 14 Memoria tables, a non-Memoria table ``allowed`` with an id generator, and a few rows."""
    async with connect(url) as conn:
        await schema.ensure_tables(conn, catalog.EXPORT_ORDER)
        caps = conn.capabilities
        await conn.execute(f"CREATE TABLE allowed (id {caps.autoincrement_pk}, value TEXT, PRIMARY KEY (id))")
        await insert_allowed(conn, "a")
        await insert_link(conn, "m-1", "m-2")
        await insert_chat(conn, "chat-1")


async def insert_allowed(conn: Connection, value: str) -> None:
    await conn.execute(f"INSERT INTO allowed (value) VALUES ({conn.capabilities.placeholders(1)})", value)


async def insert_link(conn: Connection, source: str, target: str) -> None:
    """A link_memory_threads row without an id: the table's id generator picks it."""
    ph = conn.capabilities.placeholders(4)
    await conn.execute(
        f"INSERT INTO link_memory_threads (source_memory_id, target_memory_id, relation, created_at) VALUES ({ph})",
        source, target, "related", encode(conn, ColumnType.TIMESTAMP, T0))


async def insert_chat(conn: Connection, chat_id: str) -> None:
    columns = ("chat_id", "user_input", "ai_output", "model", "timestamp", "session_id", "namespace", "metadata")
    values = (chat_id, "hello", "hi", "m", encode(conn, ColumnType.TIMESTAMP, T0), "s", "default",
              encode(conn, ColumnType.JSON, {"k": [1, 2]}))
    await conn.write("chat_history", columns, [values])


async def rows(url: str, table: str, order_by: str = "id") -> list[tuple[Any, ...]]:
    async with connect(url) as conn:
        q = conn.capabilities.quote
        return await conn.fetch(f"SELECT * FROM {q(table)} ORDER BY {q(order_by)}")


async def schema_fingerprint(url: str) -> dict[str, Any]:
    """Table names, index names per table and the number of foreign keys: what a restore must keep."""
    async with connect(url) as conn:
        tables = await conn.table_names()
        indexes = {t: await conn.index_names(t) for t in tables}
        return {"tables": tables, "indexes": indexes, "foreign_keys": await _foreign_keys(conn, tables)}


async def _foreign_keys(conn: Connection, tables: Sequence[str]) -> int:
    dialect = conn.capabilities.dialect
    if dialect == "sqlite":
        counts = [await conn.fetch("SELECT count(*) FROM pragma_foreign_key_list(?)", t) for t in tables]
        return sum(int(c[0][0]) for c in counts)
    here = "current_schema()" if dialect == "postgresql" else "DATABASE()"
    found = await conn.fetch("SELECT count(*) FROM information_schema.table_constraints "
                             f"WHERE constraint_type = 'FOREIGN KEY' AND table_schema = {here}")
    return int(found[0][0])


async def table_digest(url: str, table: str) -> tuple[int, str]:
    """(row count, an order-independent digest of every row) read in batches, so memory stays flat."""
    total, rows_seen = 0, 0
    async with connect(url) as conn:
        columns = [c.name for c in await conn.columns(table)]
        async for batch in conn.read(table, columns, batch_rows=5000):
            for row in batch:
                total += int.from_bytes(hashlib.sha256(repr(tuple(row)).encode()).digest()[:16], "big")
                rows_seen += 1
    return rows_seen, format(total % (1 << 160), "x")
