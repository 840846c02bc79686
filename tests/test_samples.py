"""Files written by Memoria itself import into every backend with every value of the source database."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from memoria_stream.catalog import TABLES
from memoria_stream.engine import import_data
from memoria_stream.types import JSON_NULL, ColumnType

from helpers import assert_same, read_all


def expected_from_sample_db(path: Path) -> dict[str, list[dict[str, Any]]]:
    """The sample database read with the standard library only, independently of memoria-stream."""
    db = sqlite3.connect(path)
    out = {}
    for name, table in TABLES.items():
        cursor = db.execute(f'SELECT * FROM "{name}"')
        columns = [d[0] for d in cursor.description]
        types = {c.name: c.type for c in table.columns}
        out[name] = [{c: _value(types[c], v) for c, v in zip(columns, row)} for row in cursor]
    db.close()
    return out


def _value(ctype: ColumnType, value: Any) -> Any:
    if value is None:
        return None
    if ctype is ColumnType.TIMESTAMP:
        return datetime.fromisoformat(value)
    if ctype is ColumnType.BOOLEAN:
        return bool(value)
    if ctype is ColumnType.FLOAT:
        return float(value)
    if ctype is ColumnType.JSON:
        parsed = json.loads(value) if isinstance(value, str) else value
        return JSON_NULL if parsed is None else parsed
    return value


@pytest.mark.parametrize("sample", ["memoria-sample.json", "memoria-sample.ndjson"])
async def test_memoria_written_file_imports_exactly(db_url: str, samples: Path, sample: str) -> None:
    expected = expected_from_sample_db(samples / "memoria-sample.db")
    report = await import_data(samples / sample, database_url=db_url)
    assert report.total_rows == 600
    assert_same(expected, await read_all(db_url))
