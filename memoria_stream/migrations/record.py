"""The applied-migration record: table ``memoria_stream_migrations`` in the target database."""

from __future__ import annotations

import hashlib
from pathlib import Path

from memoria_stream.model.catalog import utcnow
from memoria_stream.drivers import Connection, connect
from memoria_stream.model.types import ColumnType
from memoria_stream.drivers.urls import parse_url

TABLE = "memoria_stream_migrations"


def checksum(path: Path) -> str:
    """The sha256 of the script's bytes, so a changed script can be told from the one applied."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def applied_migrations(url: str) -> dict[str, str] | None:
    """``{name: checksum}`` of the applied migrations; None when a SQLite file does not exist yet.

    Reading never creates anything: neither the SQLite file nor the record table.
    """
    parsed = parse_url(url)
    if parsed.file_missing:
        return None
    async with connect(parsed) as conn:
        if TABLE not in await conn.table_names():
            return {}
        rows = await conn.fetch(f"SELECT name, checksum FROM {conn.capabilities.quote(TABLE)}")
    return {str(name): str(digest) for name, digest in rows}


async def record_applied(url: str, name: str, path: Path, duration_ms: int) -> None:
    """Write (or replace) the record of one successful run; the table is created on demand."""
    async with connect(url) as conn:
        await _ensure_table(conn)
        caps, q = conn.capabilities, conn.capabilities.quote
        applied_at = caps.encoders.get(ColumnType.TIMESTAMP, lambda v: v)(utcnow())
        async with conn.transaction():
            await conn.execute(f"DELETE FROM {q(TABLE)} WHERE name = {caps.placeholders(1)}", name)
            await conn.execute(
                f"INSERT INTO {q(TABLE)} (name, checksum, applied_at, duration_ms) VALUES ({caps.placeholders(4)})",
                name, checksum(path), applied_at, duration_ms)


async def _ensure_table(conn: Connection) -> None:
    # Checked first rather than IF NOT EXISTS, which MySQL answers with a warning.
    if TABLE in await conn.table_names():
        return
    caps = conn.capabilities
    await conn.execute(
        f"CREATE TABLE {caps.quote(TABLE)} (\n"
        f"  name {caps.column_type(ColumnType.TEXT, 255)} NOT NULL PRIMARY KEY,\n"
        f"  checksum {caps.column_type(ColumnType.TEXT, 64)} NOT NULL,\n"
        f"  applied_at {caps.column_type(ColumnType.TIMESTAMP, None)} NOT NULL,\n"
        f"  duration_ms {caps.column_type(ColumnType.INTEGER, None)} NOT NULL\n"
        f"){caps.table_suffix}")
