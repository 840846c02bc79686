"""PostgreSQL's ``row_stream``: many batches through one COPY. The rows read back equal, value for
value; the server counts one COPY per stream (a statement-level trigger fires once per COPY); the
server's error is raised as the stream ends, and a stream left by an error loads nothing."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, AsyncIterator

import pytest

from memoria_stream.drivers import connect
from memoria_stream.drivers.base import Connection
from memoria_stream.drivers.postgres import CAPABILITIES
from memoria_stream.errors import InputError, IntegrityFailure
from memoria_stream.model.types import ColumnType as T
from support.databases import make_database
from support.dataset import TRICKY_TEXT
from support.helpers import count_inserts, inserts_counted

COLUMNS = ["id", "note", "ratio", "at", "doc", "raw"]
_JSON = CAPABILITIES.encoders[T.JSON]
_TEXTS = [t for t in TRICKY_TEXT if "\x00" not in t]
ROWS: list[tuple[Any, ...]] = [
    (i, _TEXTS[i % len(_TEXTS)] if i % 5 else None, i / 7, dt.datetime(2024, 2, 29, 23, 59, 59, i % 1000000),
     _JSON({"i": i, "tags": ["é", "✨"]}) if i % 3 else None, bytes([i % 256]) * (i % 4) if i % 6 else None)
    for i in range(1, 3001)]
BATCHES = [ROWS[k:k + 250] for k in range(0, len(ROWS), 250)]


@pytest.fixture
async def pg_url(tmp_path: Path) -> AsyncIterator[str]:
    async for url in make_database("postgres", tmp_path):
        yield url


async def _table(conn: Connection) -> None:
    await conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, note TEXT, ratio DOUBLE PRECISION, "
                       "at TIMESTAMP, doc JSON, raw BYTEA)")
    await count_inserts(conn, "t")


async def _read(conn: Connection) -> tuple[list[tuple[Any, ...]], int]:
    """The rows of ``t`` and the number of statements (COPYs) that brought them."""
    rows = [tuple(r) for r in await conn.fetch(f"SELECT {', '.join(COLUMNS)} FROM t ORDER BY id")]
    return [(*r[:5], bytes(r[5]) if r[5] is not None else None) for r in rows], await inserts_counted(conn, "t")


async def test_batches_through_one_copy_read_back_equal(pg_url: str) -> None:
    async with connect(pg_url) as conn:
        await _table(conn)
        async with conn.transaction():
            stream = conn.row_stream("t", COLUMNS)
            assert stream is not None
            async with stream as rows:
                for batch in BATCHES:
                    await rows.write(batch)
        read, copies = await _read(conn)
    assert read == ROWS
    assert copies == 1


async def test_the_servers_error_is_raised_as_the_stream_ends_and_nothing_stays(pg_url: str) -> None:
    async with connect(pg_url) as conn:
        await _table(conn)
        with pytest.raises(IntegrityFailure, match="duplicate key"):
            async with conn.transaction():
                async with conn.row_stream("t", COLUMNS) as rows:  # type: ignore[union-attr]
                    await rows.write(BATCHES[0])
                    await rows.write(BATCHES[0][:1])  # id 1 again
                    await rows.write(BATCHES[1])
        assert await _read(conn) == ([], 0)
        await conn.write("t", COLUMNS, BATCHES[2])  # the connection is usable again
        assert (await _read(conn))[0] == BATCHES[2]


async def test_an_error_in_the_writer_abandons_the_copy(pg_url: str) -> None:
    async with connect(pg_url) as conn:
        await _table(conn)
        with pytest.raises(InputError, match="bad line"):  # no transaction: a finished COPY would commit
            async with conn.row_stream("t", COLUMNS) as rows:  # type: ignore[union-attr]
                await rows.write(BATCHES[0])
                raise InputError("bad line")
        assert await _read(conn) == ([], 0)
        await conn.write("t", COLUMNS, BATCHES[1])
        assert (await _read(conn))[0] == BATCHES[1]


@pytest.mark.parametrize("bad", [("not a number", None, None, None, None, None), (1,), (2**40, None, None, None, None, None)])
async def test_a_row_asyncpg_cannot_encode_is_raised_as_write_raises_it(pg_url: str, bad: tuple[Any, ...]) -> None:
    async with connect(pg_url) as conn:
        await _table(conn)
        with pytest.raises(Exception) as batch_path:
            await conn.write("t", COLUMNS, [bad])
        with pytest.raises(Exception) as streamed:  # the same error, not an exception group around it
            async with conn.row_stream("t", COLUMNS) as rows:  # type: ignore[union-attr]
                await rows.write(BATCHES[0])
                await rows.write([bad])
                await rows.write(BATCHES[1])
        assert type(streamed.value) is type(batch_path.value)
        assert str(streamed.value) == str(batch_path.value)
        assert await _read(conn) == ([], 0)
        await conn.write("t", COLUMNS, BATCHES[2])  # the connection is usable again
        assert (await _read(conn))[0] == BATCHES[2]
