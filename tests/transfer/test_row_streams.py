"""A load keeps one COPY open across a table's batches (``OpenStream``): an import into PostgreSQL
reads back equal with one COPY per table; a stream rolls over past its size and at each table; a
driver without streams writes batch by batch."""

from __future__ import annotations

from pathlib import Path
from typing import AsyncIterator

import pytest

from memoria_stream.codecs import ndjson
from memoria_stream.drivers import connect
from memoria_stream.transfer import row_streams
from memoria_stream.transfer.files import export_data, import_data
from memoria_stream.transfer.row_streams import OpenStream
from memoria_stream.transfer.schema import ensure_tables
from support.databases import make_database
from support.dataset import build_dataset, load_dataset
from support.helpers import assert_same, count_inserts, inserts_counted, read_all


@pytest.fixture
async def pg_url(tmp_path: Path) -> AsyncIterator[str]:
    async for url in make_database("postgres", tmp_path):
        yield url


async def test_an_import_sends_each_table_through_one_copy(pg_url: str, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    data = build_dataset(rows_per_table=30)
    source, dump = f"sqlite:///{tmp_path / 'source.db'}", tmp_path / "dump.ndjson"
    async with connect(source) as conn:
        await load_dataset(conn, data)
    await export_data(dump, database_url=source, format="ndjson")
    monkeypatch.setattr(ndjson, "BATCH_BYTES", 1024)  # many batches per table
    async with connect(pg_url) as conn:
        await ensure_tables(conn, list(data))
        for name in ("long_term_memory", "chat_history"):
            await count_inserts(conn, name)

    report = await import_data(dump, database_url=pg_url)

    assert_same(data, await read_all(pg_url))
    async with connect(pg_url) as conn:
        for name in ("long_term_memory", "chat_history"):
            assert report.table(name).rows == 30
            assert await inserts_counted(conn, name) == 1


async def test_a_stream_rolls_over_past_its_size_and_at_each_table(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(row_streams, "STREAM_BYTES", 1000)
    batches = [[(k * 10 + i,) for i in range(10)] for k in range(4)]
    async with connect(pg_url) as conn:
        for name in ("t", "u"):
            await conn.execute(f"CREATE TABLE {name} (id INTEGER PRIMARY KEY)")
            await count_inserts(conn, name)
        async with conn.transaction():
            async with OpenStream(conn) as streams:
                for batch in batches:
                    assert await streams.write("t", ["id"], batch, 600)  # 600 bytes each, as the caller says
                assert streams.table == "t"
                assert await streams.write("u", ["id"], [(1,), (2,)], 10)
                await streams.close()
                assert streams.table is None
                await conn.execute("INSERT INTO u VALUES (3)")  # nothing is left open on the connection
        assert [r[0] for r in await conn.fetch("SELECT id FROM t ORDER BY id")] == list(range(40))
        assert await inserts_counted(conn, "t") == 2  # two batches per COPY: the next began past 1000 bytes
        assert [r[0] for r in await conn.fetch("SELECT id FROM u ORDER BY id")] == [1, 2, 3]
        assert await inserts_counted(conn, "u") == 2  # the stream, then the INSERT


async def test_a_driver_without_streams_is_left_to_write(tmp_path: Path) -> None:
    async with connect(f"sqlite:///{tmp_path / 's.db'}") as conn:
        await conn.execute("CREATE TABLE u (id INTEGER PRIMARY KEY)")
        async with OpenStream(conn) as streams:
            assert not await streams.write("u", ["id"], [(1,)], 10)
            assert streams.table is None
        assert await conn.fetch("SELECT id FROM u") == []
