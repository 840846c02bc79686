"""A large SQLite source is exported by two processes, sharing the rowid slices of each table as
each frees, in one shared snapshot: the file is the one a single process writes, byte for byte, and a bad
stored value in the worker's slice is named as it is in this process's."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from memoria_stream.drivers import connect
from memoria_stream.errors import InputError
from memoria_stream.transfer import export
from memoria_stream.transfer.files import export_data, import_data
from memoria_stream.transfer.worker import Worker

from support.copy_support import access_events, seed
from support.dataset import build_dataset
from support.helpers import assert_same, read_all


@pytest.fixture
def sliced(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every source shared out in slices of three rows; returns the slices the worker encoded."""
    asked: list[Any] = []
    submit = Worker.submit

    async def counted(self: Worker, request: Any) -> None:
        asked.append(request)
        await submit(self, request)
    monkeypatch.setattr(Worker, "submit", counted)
    monkeypatch.setattr(export, "SHARED_FROM_BYTES", 0)
    monkeypatch.setattr(export, "SLICE_ROWS", 3)
    return asked


def _without_time(data: bytes) -> bytes:
    """The file without the header's ``exported_at`` value, the one thing two exports may differ by."""
    return re.sub(rb'"exported_at": ?"[^"]*"', b'"exported_at":""', data, count=1)


@pytest.mark.parametrize("fmt", ["ndjson", "json"])
@pytest.mark.parametrize("journal", ["delete", "wal"])
async def test_two_processes_write_the_file_one_process_writes(
        sliced: list[Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, journal: str, fmt: str) -> None:
    data = build_dataset()
    data["memory_access_events"] = access_events(400, first_id=1)
    source = f"sqlite:///{tmp_path / 'source.db'}"
    await seed(source, data)
    async with connect(source) as conn:  # holes in the rowids: empty and partial slices
        await conn.execute(f"PRAGMA journal_mode = {journal}")
        await conn.execute("DELETE FROM memory_access_events WHERE id % 7 = 0 OR id BETWEEN 120 AND 260")

    await export_data(tmp_path / f"shared.{fmt}", database_url=source)
    assert {request.table for request in sliced} >= {"memory_access_events", "long_term_memory"}
    monkeypatch.setattr(export, "SHARED_FROM_BYTES", 1 << 62)
    asked = len(sliced)
    await export_data(tmp_path / f"alone.{fmt}", database_url=source)
    assert len(sliced) == asked  # no worker this time

    shared = (tmp_path / f"shared.{fmt}").read_bytes()
    alone = (tmp_path / f"alone.{fmt}").read_bytes()
    assert _without_time(shared) == _without_time(alone) != shared  # every byte but the time
    target = f"sqlite:///{tmp_path / 'target.db'}"
    await import_data(tmp_path / f"shared.{fmt}", database_url=target)
    assert_same(await read_all(source), await read_all(target))


@pytest.mark.parametrize("rowid", [2, 5])  # in this process's first slice, in the worker's
async def test_a_bad_stored_value_is_named_whichever_process_reads_it(
        sliced: list[Any], tmp_path: Path, rowid: int) -> None:
    source = f"sqlite:///{tmp_path / 'source.db'}"
    await seed(source, build_dataset())
    async with connect(source) as conn:
        await conn.execute(f"UPDATE long_term_memory SET processed_data = 'not json {{' WHERE _rowid_ = {rowid}")
    with pytest.raises(InputError) as failure:
        await export_data(tmp_path / "dump.ndjson", database_url=source)
    message = str(failure.value)
    assert "table long_term_memory" in message and "column processed_data" in message, message
    assert "'not json {'" in message, message
    assert any(r.table == "long_term_memory" and r.within[0] <= rowid < r.within[1] for r in sliced) == (rowid == 5)
    assert not (tmp_path / "dump.ndjson").exists()
