"""Row digests that are the same whichever backend or file holds the row.

A row is hashed as the compact JSON (sorted keys) of ``{column: tagged value}``; tags keep apart what
must differ (SQL NULL, JSON ``null``, the empty string; 1 and 1.0; text and bytes) and fold what the
backends cannot keep apart (the sign of a float zero — SQLite stores REAL -0.0 as 0.0). A table's
checksum is the sum of its row digests modulo 2**256: independent of row order, and unlike XOR a
duplicated row does not cancel itself out.

Per-row digests are also kept, keyed by primary key, in a temporary SQLite file per side, so that
the first differing key can be named without holding a table in memory.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import re
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any, AsyncIterator, Iterable, Sequence

import anyio
import orjson

from memoria_stream.model.types import JSON_NULL, Row
from memoria_stream.model.values import to_naive_utc

MODULUS = 1 << 256
_NEGATIVE_ZERO = re.compile(rb"-0\.0[,\]}]")  # how orjson writes a float -0.0 (not -0.05, not text)
_INT64 = (-(1 << 63), (1 << 63) - 1)


def tag(value: Any) -> Any:
    """A JSON-ready form of one canonical value that only equal values share."""
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, int):
        return value if _INT64[0] <= value <= _INT64[1] else {"i": str(value)}
    if isinstance(value, float):
        return {"f": repr(0.0 if value == 0.0 else value)}
    if isinstance(value, datetime):
        return {"t": to_naive_utc(value).isoformat()}
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"b": base64.b64encode(bytes(value)).decode()}
    if value is JSON_NULL:
        return {"j": None}
    if isinstance(value, (dict, list)):
        return {"j": _fold_zero(value)}
    return {"?": str(value)}


def _fold_zero(value: Any) -> Any:
    if isinstance(value, float) and value == 0.0:
        return 0.0
    if isinstance(value, dict):
        return {k: _fold_zero(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_fold_zero(v) for v in value]
    return value


def row_digest(columns: Sequence[str], row: Row) -> bytes:
    obj = {c: tag(v) for c, v in zip(columns, row)}
    return hashlib.sha256(orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)).digest()


def row_digests(columns: Sequence[str], rows: Sequence[Row]) -> list[bytes]:
    """Each row's ``row_digest``, but fast enough to run on every row of an export or a sync: the
    common value types are tagged inline, and JSON values are folded (``_fold_zero``) only when the
    row's text shows a negative zero at all."""
    digests = []
    sha256, dumps, sort_keys = hashlib.sha256, orjson.dumps, orjson.OPT_SORT_KEYS
    low, high = _INT64
    for row in rows:
        obj: dict[str, Any] = {}
        has_json = False
        for column, value in zip(columns, row):
            kind = type(value)
            if value is None or kind is str or kind is bool or (kind is int and low <= value <= high):
                obj[column] = value
            elif kind is datetime and value.tzinfo is None:
                obj[column] = {"t": value.isoformat()}
            elif kind is dict or kind is list:
                obj[column], has_json = {"j": value}, True
            elif kind is float:
                obj[column] = {"f": repr(value) if value else "0.0"}  # -0.0 folded, as ``tag`` does
            else:
                obj[column] = tag(value)
        data = dumps(obj, option=sort_keys)
        if has_json and _NEGATIVE_ZERO.search(data):  # rare: a JSON -0.0 digests as 0.0, as ``tag`` folds it
            data = dumps({c: tag(v) for c, v in zip(columns, row)}, option=sort_keys)
        digests.append(sha256(data).digest())
    return digests


def digest_sum(columns: Sequence[str], rows: Sequence[Row]) -> int:
    """The sum (mod 2**256) of ``rows``' digests: a batch's share of a table's checksum."""
    return add_digests(0, row_digests(columns, rows))


def add_digests(checksum: int, digests: Iterable[bytes]) -> int:
    """A table checksum with more row digests added: the sum of all its row digests modulo 2**256."""
    return (checksum + sum(int.from_bytes(d, "big") for d in digests)) % MODULUS


def key_text(key_positions: Sequence[int], row: Row) -> str:
    return orjson.dumps([tag(row[i]) for i in key_positions]).decode()


def describe_key(text: str) -> str:
    """The primary key as a person reads it (``42``, ``'ltm-3'``, or a tuple)."""
    values = orjson.loads(text)
    shown = [repr(v) if not isinstance(v, dict) else str(next(iter(v.values()))) for v in values]
    return shown[0] if len(shown) == 1 else f"({', '.join(shown)})"


class DigestStore:
    """Per-row digests of one side, on disk: ``(table, key, digest)``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode = OFF")
        self._db.execute("PRAGMA synchronous = OFF")
        self._db.execute("CREATE TABLE d (tbl TEXT NOT NULL, k TEXT NOT NULL, h BLOB NOT NULL)")
        self._lock = anyio.Lock()

    async def add(self, table: str, items: list[tuple[str, bytes]]) -> None:
        async with self._lock:  # one sqlite3 connection, used by one thread at a time
            await anyio.to_thread.run_sync(self._insert, table, items)

    def _insert(self, table: str, items: list[tuple[str, bytes]]) -> None:
        self._db.execute("BEGIN")
        self._db.executemany("INSERT INTO d VALUES (?, ?, ?)", [(table, k, h) for k, h in items])
        self._db.execute("COMMIT")

    def close(self) -> None:
        self._db.close()


async def first_difference(a: DigestStore, b: DigestStore, table: str) -> str | None:
    """The first key (shortest, then smallest) whose row differs, or exists on one side only; ``None`` if none does."""
    return await anyio.to_thread.run_sync(_first_difference, a.path, b.path, table)


def _first_difference(a: Path, b: Path, table: str) -> str | None:
    with contextlib.closing(sqlite3.connect(a)) as db:
        db.execute("ATTACH DATABASE ? AS other", (str(b),))
        for schema in ("main", "other"):
            db.execute(f"CREATE INDEX IF NOT EXISTS {schema}.d_key ON d (tbl, k)")
        row = db.execute(
            "SELECT k FROM ("
            " SELECT x.k AS k FROM main.d x WHERE x.tbl = ?1 AND NOT EXISTS"
            "  (SELECT 1 FROM other.d y WHERE y.tbl = ?1 AND y.k = x.k AND y.h = x.h)"
            " UNION ALL SELECT y.k FROM other.d y WHERE y.tbl = ?1 AND NOT EXISTS"
            "  (SELECT 1 FROM main.d x WHERE x.tbl = ?1 AND x.k = y.k AND x.h = y.h))"
            " ORDER BY length(k), k LIMIT 1", (table,)).fetchone()  # numbers in numeric order
        if row is None:
            return None
        key = row[0]
        in_a = db.execute("SELECT 1 FROM main.d WHERE tbl = ? AND k = ?", (table, key)).fetchone()
        in_b = db.execute("SELECT 1 FROM other.d WHERE tbl = ? AND k = ?", (table, key)).fetchone()
    where = "differs" if in_a and in_b else ("only in A" if in_a else "only in B")
    return f"{describe_key(key)} ({where})"


@contextlib.asynccontextmanager
async def digest_stores(folder: Path) -> AsyncIterator[tuple[DigestStore, DigestStore]]:
    a, b = DigestStore(folder / "a.db"), DigestStore(folder / "b.db")
    try:
        yield a, b
    finally:
        a.close()
        b.close()
