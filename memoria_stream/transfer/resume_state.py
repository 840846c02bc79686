"""The record of finished tables kept on the target by ``--commit-per-table`` runs.

One row per (run key, table) in ``memoria_stream_progress``: the row count and the table's
``verify`` checksum (the sum of its row digests, see ``digests.py``) as committed, and when. A run
key names what is being moved (the source and the table set), so a resumed run trusts only the
records of the very same move, and only while the table still holds what was recorded.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from memoria_stream.transfer.digests import add_digests, row_digests
from memoria_stream.drivers.base import Connection
from memoria_stream.transfer.plans import export_plan
from memoria_stream.model.types import ColumnType
from memoria_stream.drivers.urls import parse_url
from memoria_stream.model.values import utc_now_iso

STATE_TABLE = "memoria_stream_progress"
_READ_ROWS = 5000
_HASH_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Finished:
    """A table a run committed: its row count and checksum at that moment."""

    table: str
    rows: int
    checksum: str  # 64 hex digits, as ``verify --log-format json`` prints it
    finished_at: str


def run_key(kind: str, source: str, tables: Sequence[str]) -> str:
    """A digest naming one move: ``kind`` (copy/import), the source's identity and the table set."""
    text = "\n".join([kind, source, *sorted(tables)])
    return hashlib.sha256(text.encode()).hexdigest()


def source_database_identity(source_url: str) -> str:
    """A copy's source as a run key needs it: the database itself, not the URL's spelling, so that
    ``sqlite:///memoria.db`` run from another folder (another file) is another move; plus the
    PostgreSQL schema that is read."""
    url = parse_url(source_url)
    return f"{url.identity()}\nschema={url.query.get('schema', '')}"


def file_identity(path: Path) -> str:
    """An input file as a run key needs it: its absolute path, size and a SHA-256 of its content.

    The content, not the modification time: a dump replaced by another of the same size, with its
    old time put back, is another move. Reading it once more costs little next to the load, which
    reads the file once per table."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return f"{path.resolve()}|{path.stat().st_size}|sha256:{digest.hexdigest()}"


async def table_state(conn: Connection, name: str) -> tuple[int, str]:
    """Row count and ``verify`` checksum of ``name`` as ``conn`` sees it (inside its transaction, if any)."""
    plan = export_plan(name, await conn.columns(name), conn.capabilities)
    columns = plan.layout.columns
    rows = total = 0
    async for raw in conn.read(name, columns, batch_rows=_READ_ROWS):
        decoded = plan.decode(raw)
        rows += len(decoded)
        total = add_digests(total, row_digests(columns, decoded))
    return rows, f"{total:064x}"


async def ensure_state_table(conn: Connection) -> None:
    """Create the record table when missing (before any load: MySQL commits on DDL)."""
    caps = conn.capabilities
    text, number = caps.column_type(ColumnType.TEXT, 64), "BIGINT"  # BIGINT: 64-bit on all three
    q = caps.quote
    await conn.execute(
        f"CREATE TABLE IF NOT EXISTS {q(STATE_TABLE)} ({q('run_key')} {text} NOT NULL, "
        f"{q('table_name')} {text} NOT NULL, {q('row_count')} {number} NOT NULL, {q('checksum')} {text} NOT NULL, "
        f"{q('finished_at')} {caps.column_type(ColumnType.TEXT, 32)} NOT NULL, "
        f"PRIMARY KEY ({q('run_key')}, {q('table_name')})){caps.table_suffix}")


async def read_finished(conn: Connection, key: str) -> dict[str, Finished]:
    """The tables recorded as finished under ``key``."""
    q, ph = conn.capabilities.quote, conn.capabilities.placeholders(1)
    rows = await conn.fetch(f"SELECT {q('table_name')}, {q('row_count')}, {q('checksum')}, {q('finished_at')} "
                            f"FROM {q(STATE_TABLE)} WHERE {q('run_key')} = {ph}", key)
    return {name: Finished(name, int(count), checksum, finished) for name, count, checksum, finished in rows}


async def forget(conn: Connection, key: str, table: str | None = None) -> None:
    """Drop the records of ``key`` (of one ``table`` only, when given)."""
    caps = conn.capabilities
    q = caps.quote
    sql = f"DELETE FROM {q(STATE_TABLE)} WHERE {q('run_key')} = {caps.placeholders(1)}"
    if table is None:
        await conn.execute(sql, key)
    else:
        await conn.execute(f"{sql} AND {q('table_name')} = {caps.placeholders(1, 2)}", key, table)


async def record(conn: Connection, key: str, table: str) -> Finished:
    """Read ``table`` back (after its load committed) and record it as finished under ``key``."""
    rows, checksum = await table_state(conn, table)
    done = Finished(table, rows, checksum, utc_now_iso())
    q = conn.capabilities.quote
    columns = ", ".join(q(c) for c in ("run_key", "table_name", "row_count", "checksum", "finished_at"))
    async with conn.transaction():
        await forget(conn, key, table)
        await conn.execute(f"INSERT INTO {q(STATE_TABLE)} ({columns}) VALUES ({conn.capabilities.placeholders(5)})",
                           key, table, rows, checksum, done.finished_at)
    return done
