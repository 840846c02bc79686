"""The keys a dry run must compare, spooled to a private temporary SQLite file.

Primary keys and unique-constraint values of the input, the keys of the target rows that stay, and
the references still to resolve: sets of any size at the memory cost of SQLite's page cache, never
Python sets that grow with the input.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
from typing import Any, Iterator

Place = tuple[int | None, int | None]  # (line, row) in the input; (None, None) for a target row
Reference = tuple[str, str, str, Any, str | None, int | None, int | None]  # child, col, parent, value, key, line, row

_RESOLVED_CACHE = 200_000  # parent keys known to exist, kept in memory to skip most lookups (≈ 20 MB at most)
_LOOKUP_CHUNK = 500  # values per ``IN (…)`` (SQLite allows 32,766 variables; this keeps plans small)


class KeyStore:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        db.executescript(
            "PRAGMA journal_mode=MEMORY; PRAGMA synchronous=OFF; PRAGMA cache_size=-16384;"  # 16 MB of pages
            "CREATE TABLE input_keys (tbl TEXT, k, line INTEGER, row INTEGER, PRIMARY KEY (tbl, k)) WITHOUT ROWID;"
            "CREATE TABLE kept_keys (tbl TEXT, k, PRIMARY KEY (tbl, k)) WITHOUT ROWID;"
            "CREATE TABLE refs (child TEXT, col TEXT, parent TEXT, k, key TEXT, line INTEGER, row INTEGER);")
        # (parent, value) pairs found among the input's keys: a key once recorded stays recorded,
        # so the cache never goes stale. Children mostly point at few parents (teams, workspaces)
        # or at parents just loaded, so most references resolve here without touching the file.
        self._resolved: set[tuple[str, Any]] = set()

    def add_keys(self, table: str, items: list[tuple[Any, int | None, int | None]]) -> list[tuple[int, Any, Any]]:
        """Record ``(key, line, row)`` items; for each item whose key was already recorded, returns
        its index with the line and row where the key came first."""
        before = self.db.total_changes
        self.db.execute("SAVEPOINT batch")
        self.db.executemany("INSERT OR IGNORE INTO input_keys VALUES (?, ?, ?, ?)", [(table, *i) for i in items])
        if self.db.total_changes - before == len(items):
            self.db.execute("RELEASE batch")
            return []
        self.db.execute("ROLLBACK TO batch")  # some key repeats: find which, one at a time
        self.db.execute("RELEASE batch")
        repeats = []
        for index, item in enumerate(items):
            if not self.db.execute("INSERT OR IGNORE INTO input_keys VALUES (?, ?, ?, ?)", (table, *item)).rowcount:
                first = self.db.execute("SELECT line, row FROM input_keys WHERE tbl = ? AND k = ?",
                                        (table, item[0])).fetchone()
                repeats.append((index, first[0], first[1]))
        return repeats

    def add_refs(self, refs: list[Reference]) -> None:
        """Spool the references not already resolved by a key the input holds."""
        if not refs:
            return
        parents = {r[2] for r in refs}
        unknown = {(r[2], r[3]) for r in refs} - self._resolved
        for parent in parents:
            values = [v for p, v in unknown if p == parent]
            self._resolve(parent, values)
        self.db.executemany("INSERT INTO refs VALUES (?, ?, ?, ?, ?, ?, ?)",
                            [r for r in refs if (r[2], r[3]) not in self._resolved])

    def _resolve(self, parent: str, values: list[Any]) -> None:
        if len(self._resolved) > _RESOLVED_CACHE:
            self._resolved.clear()  # bounded: a miss only costs a lookup (or a spooled reference)
        for at in range(0, len(values), _LOOKUP_CHUNK):
            chunk = values[at:at + _LOOKUP_CHUNK]
            marks = ",".join("?" * len(chunk))
            found = self.db.execute(f"SELECT k FROM input_keys WHERE tbl = ? AND k IN ({marks})", (parent, *chunk))
            self._resolved.update((parent, k) for (k,) in found)

    def add_kept(self, table: str, keys: list[Any]) -> None:
        self.db.executemany("INSERT OR IGNORE INTO kept_keys VALUES (?, ?)", [(table, k) for k in keys])

    def kept_also_in_input(self, table: str) -> Iterator[tuple[Any, int | None, int | None]]:
        yield from self.db.execute("SELECT i.k, i.line, i.row FROM input_keys i JOIN kept_keys t "
                                   "ON t.tbl = i.tbl AND t.k = i.k WHERE i.tbl = ? ORDER BY i.line, i.row", (table,))

    def dangling(self) -> Iterator[Reference]:
        yield from self.db.execute(
            "SELECT child, col, parent, k, key, line, row FROM refs r "
            "WHERE NOT EXISTS (SELECT 1 FROM input_keys i WHERE i.tbl = r.parent AND i.k = r.k) "
            "AND NOT EXISTS (SELECT 1 FROM kept_keys t WHERE t.tbl = r.parent AND t.k = r.k) "
            "ORDER BY child, line, row")


@contextlib.contextmanager
def open_key_store() -> Iterator[KeyStore]:
    with tempfile.TemporaryDirectory(prefix="memoria-preflight-") as folder:  # created 0700
        path = os.path.join(folder, "keys.sqlite")
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))  # private before SQLite opens it
        db = sqlite3.connect(path, isolation_level=None)
        try:
            yield KeyStore(db)
        finally:
            db.close()
