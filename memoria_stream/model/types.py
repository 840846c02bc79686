"""Shared type aliases and the canonical column types."""

from __future__ import annotations

import enum
from typing import Any, AsyncIterator, Sequence


class ColumnType(str, enum.Enum):
    """The canonical type set every backend maps to and from."""

    TEXT = "text"
    INTEGER = "integer"
    FLOAT = "float"
    BOOLEAN = "boolean"
    TIMESTAMP = "timestamp"
    JSON = "json"
    BYTES = "bytes"


class _JsonNull:
    """The JSON literal ``null`` stored in a JSON column (distinct from SQL NULL, which is ``None``)."""

    _instance: "_JsonNull | None" = None

    def __new__(cls) -> "_JsonNull":
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "JSON_NULL"

    def __reduce__(self) -> str:
        return "JSON_NULL"


JSON_NULL = _JsonNull()

Row = Sequence[Any]
"""One row (a tuple, list or driver record), in the order of the column list it travels with."""

Batch = Sequence[Row]
ByteStream = AsyncIterator[bytes]
