"""Export then import on every backend: every row read back equals the row written."""

from __future__ import annotations

from pathlib import Path

import pytest

from memoria_stream.drivers import connect
from memoria_stream.transfer.files import export_data, import_data

from support.databases import make_database
from support.dataset import build_dataset, load_dataset
from support.helpers import assert_same, read_all


@pytest.mark.parametrize("fmt", ["json", "ndjson"])
async def test_round_trip_through_a_file(db_url: str, second_db_url: str, tmp_path: Path, fmt: str) -> None:
    data = build_dataset()
    async with connect(db_url) as conn:
        await load_dataset(conn, data)
    assert_same(data, await read_all(db_url))  # the source itself holds the values exactly

    dump = tmp_path / f"dump.{fmt}"
    exported = await export_data(dump, database_url=db_url, format=fmt)
    assert exported.total_rows == sum(len(rows) for rows in data.values())

    report = await import_data(dump, database_url=second_db_url)
    assert report.format == fmt
    assert {t.name: t.rows for t in report.tables.values()} == {n: len(r) for n, r in data.items()}
    assert_same(data, await read_all(second_db_url))


async def test_chain_through_every_backend_and_format(tmp_path: Path) -> None:
    """SQLite → NDJSON → PostgreSQL → JSON → MySQL → NDJSON → SQLite ends with the rows it began with."""
    data = build_dataset()
    start = f"sqlite:///{tmp_path / 'start.db'}"
    end = f"sqlite:///{tmp_path / 'end.db'}"
    async with connect(start) as conn:
        await load_dataset(conn, data)
    async for pg in make_database("postgres", tmp_path):
        async for my in make_database("mysql", tmp_path):
            await export_data(tmp_path / "a.ndjson", database_url=start)
            await import_data(tmp_path / "a.ndjson", database_url=pg)
            await export_data(tmp_path / "b.json", database_url=pg)
            await import_data(tmp_path / "b.json", database_url=my)
            await export_data(tmp_path / "c.ndjson", database_url=my)
            await import_data(tmp_path / "c.ndjson", database_url=end)
    assert_same(data, await read_all(end))
