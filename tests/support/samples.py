"""Memoria's sample database read with the standard library only, independently of memoria-stream."""

from __future__ import annotations
import json
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any
from memoria_stream.model.catalog import TABLES
from memoria_stream.model.types import JSON_NULL, ColumnType


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
