"""``storage_changes`` on SQLite: every row written since the last look sits on a leaf reported changed.

``copy --sync`` lists a SQLite source's keys and reads only the rows of leaves (with their overflow
pages) that changed since the memory was taken; every other row is trusted to be as remembered. The
oracle here is the file's own rows, read before and after: a row that is new or differs in any byte
must be among the rowids reported.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings, strategies as st

from memoria_stream.drivers import connect
from memoria_stream.drivers.base import StorageChanges

TABLE = "notes"
PAGE = 4096  # rows longer than a page continue on overflow pages


def _create(path: Path, bodies: list[bytes]) -> None:
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA page_size = {PAGE}")
        db.execute(f"CREATE TABLE {TABLE} (id TEXT PRIMARY KEY, body BLOB, n INTEGER)")
        db.executemany(f"INSERT INTO {TABLE} VALUES (?, ?, ?)", [(f"k{i}", b, i) for i, b in enumerate(bodies)])
    sqlite3.connect(path).close()


def _rows(path: Path) -> dict[int, tuple[Any, ...]]:
    with sqlite3.connect(path) as db:
        return {row[0]: row[1:] for row in db.execute(f"SELECT rowid, * FROM {TABLE}")}


async def _look(path: Path, remembered: Any) -> StorageChanges | None:
    async with connect(f"sqlite:///{path}") as conn, conn.snapshot():
        found = await conn.storage_changes({TABLE: remembered})
    return None if found is None else found[TABLE]


def _written(before: dict[int, tuple[Any, ...]], after: dict[int, tuple[Any, ...]]) -> set[int]:
    return {rowid for rowid, row in after.items() if before.get(rowid) != row}


async def test_a_same_size_edit_deep_in_an_overflow_chain_is_found(tmp_path: Path) -> None:
    path = tmp_path / "source.db"
    bodies = [bytes([i % 251]) * (300 + 37 * i) for i in range(120)] + [b"x" * 30_000]  # the last: 8 pages
    _create(path, bodies)
    first = await _look(path, None)
    assert first is not None and first.rows == len(bodies) and first.changed is None
    unchanged = await _look(path, first.units)
    assert unchanged is not None and unchanged.changed == [] and unchanged.rows == len(bodies)

    before = _rows(path)
    with sqlite3.connect(path) as db:  # the same length: SQLite overwrites the overflow page in place
        db.execute(f"UPDATE {TABLE} SET body = CAST(substr(body, 1, 29000) || x'79' || substr(body, 29002) AS BLOB) "
                   "WHERE id = 'k120'")
        db.execute(f"UPDATE {TABLE} SET n = -1 WHERE id = 'k7'")
    after = _rows(path)
    assert _written(before, after) == {121, 8}
    found = await _look(path, first.units)
    assert found is not None and {121, 8} <= set(found.changed)
    assert len(found.changed) < len(bodies) // 4  # only the leaves those rows live on


async def test_a_file_in_wal_mode_is_not_read_beside_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "source.db"
    _create(path, [b"a" * 100] * 10)
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA journal_mode = wal")
    assert await _look(path, None) is None


_operations = st.lists(st.tuples(st.sampled_from(["insert", "update", "edit", "delete"]),
                                 st.integers(0, 10_000), st.integers(0, 12_000)), max_size=25)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sizes=st.lists(st.integers(0, 12_000), min_size=1, max_size=60), operations=_operations)
async def test_every_row_written_since_is_on_a_changed_leaf(tmp_path_factory: Any, sizes: list[int],
                                                            operations: list[tuple[str, int, int]]) -> None:
    path = tmp_path_factory.mktemp("pages") / "source.db"
    _create(path, [bytes([s % 256]) * s for s in sizes])
    first = await _look(path, None)
    assert first is not None
    before = _rows(path)
    with sqlite3.connect(path) as db:
        for step, (kind, pick, size) in enumerate(operations):
            ids = [r[0] for r in db.execute(f"SELECT id FROM {TABLE} ORDER BY rowid")]
            key = ids[pick % len(ids)] if ids else None
            if kind == "insert" or key is None:
                db.execute(f"INSERT INTO {TABLE} VALUES (?, ?, ?)", (f"new{step}", b"n" * size, size))
            elif kind == "update":
                db.execute(f"UPDATE {TABLE} SET body = ? WHERE id = ?", (b"u" * size, key))
            elif kind == "edit":  # one byte changed anywhere in the row, its length kept
                db.execute(f"UPDATE {TABLE} SET body = CASE WHEN length(body) = 0 THEN body ELSE "
                           f"CAST(substr(body, 1, ?1 % length(body)) || x'21' || substr(body, ?1 % length(body) + 2) AS BLOB) END "
                           f"WHERE id = ?2", (size, key))
            else:
                db.execute(f"DELETE FROM {TABLE} WHERE id = ?", (key,))
    after = _rows(path)
    found = await _look(path, first.units)
    assert found is not None and found.rows == len(after)
    assert _written(before, after) <= set(found.changed)
