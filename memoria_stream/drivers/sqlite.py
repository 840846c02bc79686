"""SQLite through aiosqlite: large fetches across the thread hop, executemany in one transaction."""

from __future__ import annotations

import contextlib
import marshal
import os
from itertools import repeat
from operator import itemgetter
import sqlite3
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping, Sequence, cast

import aiosqlite
import xxhash

from memoria_stream.private import create_private_file
from memoria_stream.errors import DatabaseError, IntegrityFailure
from memoria_stream.model.types import ColumnType as T, Row
from memoria_stream.drivers.urls import DatabaseURL
from memoria_stream.drivers.sqlite_pages import LeafRequest, Leaves, leaf_reports_in_child
from memoria_stream.model.values import json_from_text, json_to_text, sqlite_timestamp, stored_timestamp
from memoria_stream.drivers.base import PROBE_ROWS, Capabilities, LiveColumn, StorageChanges, rows_per_batch, shielded as _shielded, select_sql


_ROWIDS_PER_QUERY = 500  # rowids per ``IN (…)``
_BUSY_MS = 30_000  # how long a statement waits for another connection's lock


CAPABILITIES = Capabilities(
    dialect="sqlite",
    fingerprints_in_client=True,
    sliced_reads=True,
    quote_char='"',
    placeholder="?",
    bulk_copy=False,
    max_bind_params=32766,
    transactional_ddl=True,
    # The same declared types Memoria's SQLAlchemy models emit, so Memoria can use tables we create.
    ddl_types={
        T.TEXT: "TEXT", T.INTEGER: "INTEGER", T.FLOAT: "FLOAT", T.BOOLEAN: "BOOLEAN",
        T.TIMESTAMP: "DATETIME", T.JSON: "JSON", T.BYTES: "BLOB",
    },
    varchar="VARCHAR({n})",
    autoincrement_pk="INTEGER NOT NULL",  # with PRIMARY KEY (id): a rowid alias
    enforces_text_length=False,
    add_foreign_key_later=False,
    parallel_writers=False,
    sized_integers=False,
    encoders={T.TIMESTAMP: sqlite_timestamp, T.BOOLEAN: int, T.JSON: json_to_text},
    decoders={T.TIMESTAMP: stored_timestamp, T.BOOLEAN: bool, T.JSON: json_from_text, T.FLOAT: float},
)

# Declared type affinity words, checked in order (SQLite's own rules, plus the names SQLAlchemy uses).
_TYPE_WORDS = (
    ("BOOL", T.BOOLEAN), ("DATE", T.TIMESTAMP), ("TIME", T.TIMESTAMP), ("JSON", T.JSON),
    ("INT", T.INTEGER), ("CHAR", T.TEXT), ("CLOB", T.TEXT), ("TEXT", T.TEXT), ("BLOB", T.BYTES),
    ("REAL", T.FLOAT), ("FLOA", T.FLOAT), ("DOUB", T.FLOAT), ("NUMERIC", T.FLOAT), ("DECIMAL", T.FLOAT),
)


def canonical_type(declared: str) -> T:
    upper = declared.upper()
    return next((ctype for word, ctype in _TYPE_WORDS if word in upper), T.TEXT)


@contextlib.contextmanager
def _translated(url: DatabaseURL) -> Iterator[None]:
    try:
        yield
    except sqlite3.IntegrityError as exc:
        raise IntegrityFailure(f"SQLite {url.database}: {exc}") from exc
    except sqlite3.Error as exc:
        raise DatabaseError(f"SQLite {url.database or ':memory:'}: {exc}") from exc


class _Opener:
    """Opens the sqlite3 connection aiosqlite runs (in its thread) and keeps it: with
    ``blocking_reads``, ``read`` runs it on the caller's thread, so it is opened for use from more
    than one thread. One thread at a time uses it: each use is awaited before the next starts."""

    def __init__(self, database: str, **options: Any) -> None:
        self.database, self.options = database, options
        self.opened: sqlite3.Connection

    def __call__(self) -> sqlite3.Connection:
        self.opened = sqlite3.connect(self.database, isolation_level=None, timeout=_BUSY_MS / 1000,
                                      check_same_thread=False, **self.options)
        return self.opened


async def _batches(fetch: Callable[[int], Awaitable[Iterable[Any]]], batch_rows: int) -> AsyncIterator[list[Row]]:
    size = min(batch_rows, PROBE_ROWS)  # one large fetch per call, sized by bytes
    while rows := cast("list[Row]", list(await fetch(size))):
        yield rows
        if size == PROBE_ROWS:
            size = rows_per_batch(rows, batch_rows)


def _at_once(fetch: Callable[[int], Iterable[Any]]) -> Callable[[int], Awaitable[Iterable[Any]]]:
    async def fetched(size: int) -> Iterable[Any]:
        return fetch(size)
    return fetched


class SQLiteConnection:
    """One aiosqlite connection in autocommit mode: transactions are opened explicitly."""

    capabilities = CAPABILITIES
    deferred_foreign_keys = False
    parents_first = False

    def __init__(self, url: DatabaseURL, db: aiosqlite.Connection, raw: sqlite3.Connection, *,
                 blocking_reads: bool = False) -> None:
        self.url = url
        self._db = db
        self._raw = raw  # ``db``'s own sqlite3 connection, for reads run on the caller's thread
        self._closed = False
        self.blocking_reads = blocking_reads  # ``read`` on the caller's thread (see ``drivers.connect``)

    @classmethod
    async def open(cls, url: DatabaseURL, *, create: bool = True, read_only: bool = False,
                   blocking_reads: bool = False) -> "SQLiteConnection":
        path = ":memory:" if url.is_memory else str(url.database)
        if not url.is_memory and (read_only or not create) and not Path(path).exists():
            raise DatabaseError(f"SQLite database file not found: {path}")
        if not url.is_memory:
            parent = Path(path).parent
            if not parent.exists():
                raise DatabaseError(f"SQLite database folder does not exist: {parent}")
            if not read_only:
                _create_private(Path(path))
        with _translated(url):
            if read_only and not url.is_memory:
                # mode=ro: SQLite itself refuses to create the file or to write (a plain open creates it).
                opener = _Opener(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)
            else:
                opener = _Opener(path)
            db = await aiosqlite.Connection(opener, iter_chunk_size=64)
            db.row_factory = None
        return cls(url, db, opener.opened, blocking_reads=blocking_reads)

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            with contextlib.suppress(Exception):
                await _shielded(self._db.close())  # a cancelled close would leak aiosqlite's thread

    async def execute(self, sql: str, *params: Any) -> None:
        with _translated(self.url):
            await self._db.execute(sql, params)

    async def executescript(self, sql: str) -> None:
        with _translated(self.url):
            await self._db.executescript(sql)

    async def fetch(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with _translated(self.url):
            async with self._db.execute(sql, params) as cursor:
                return [tuple(r) for r in await cursor.fetchall()]

    async def table_names(self) -> list[str]:
        rows = await self.fetch(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
        )
        return [r[0] for r in rows]

    async def columns(self, table: str) -> list[LiveColumn]:
        rows = await self.fetch("SELECT name, type, \"notnull\", pk FROM pragma_table_info(?)", table)
        return [LiveColumn(name, canonical_type(declared or ""), not notnull and not pk, declared or "")
                for name, declared, notnull, pk in rows]

    async def index_names(self, table: str) -> list[str]:
        rows = await self.fetch("SELECT name FROM pragma_index_list(?) WHERE origin = 'c'", table)
        return sorted(r[0] for r in rows)

    @contextlib.asynccontextmanager
    async def transaction(self, *, foreign_keys: bool = True) -> AsyncIterator[None]:
        # PRAGMA foreign_keys is a no-op inside a transaction, so it is switched before BEGIN and
        # restored after COMMIT/ROLLBACK on this very connection.
        previous = (await self.fetch("PRAGMA foreign_keys"))[0][0]
        if not foreign_keys and previous:
            await self.execute("PRAGMA foreign_keys = OFF")
        try:
            await self.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                await _shielded(self._rollback())
                raise
            await self.execute("COMMIT")
        finally:
            if not foreign_keys and previous:
                await _shielded(self.execute("PRAGMA foreign_keys = ON"))

    async def _rollback(self) -> None:
        with contextlib.suppress(Exception):
            await self._db.execute("ROLLBACK")

    @contextlib.asynccontextmanager
    async def snapshot(self, *, wait: bool = True) -> AsyncIterator[None]:
        # A read transaction: the first SELECT pins the snapshot (WAL) or holds the shared lock.
        await self.execute("BEGIN")
        try:
            if wait:
                await self.fetch("SELECT count(*) FROM sqlite_master")
            else:  # the shared lock at once or not at all (no busy wait)
                await self.execute("PRAGMA busy_timeout = 0")
                try:
                    await self.fetch("SELECT count(*) FROM sqlite_master")
                finally:
                    await _shielded(self.execute(f"PRAGMA busy_timeout = {_BUSY_MS}"))
            yield
        finally:
            await _shielded(self._rollback())

    async def read(self, table: str, columns: Sequence[str], *, batch_rows: int,
                   order_by: Sequence[str] = (), within: tuple[int, int] | None = None) -> AsyncIterator[list[Row]]:
        sql = select_sql(self.capabilities, table, columns, order_by)
        if within is not None:  # a rowid range: read through the table's b-tree in rowid order, as a full scan
            sql = f"{sql} WHERE _rowid_ >= ? AND _rowid_ < ?"
        with _translated(self.url):
            if not self.blocking_reads:
                cursor = await self._db.execute(sql, within or ())
                try:
                    async for rows in _batches(cursor.fetchmany, batch_rows):
                        yield rows
                finally:
                    await cursor.close()
                return
            # Read on this thread: each hop to aiosqlite's thread and back, with the GIL handed over
            # while that thread builds the rows, added about 30 % to the CPU of a read.
            raw = self._raw.execute(sql, within or ())
            try:
                async for rows in _batches(_at_once(raw.fetchmany), batch_rows):
                    yield rows
            finally:
                raw.close()

    async def row_ranges(self, table: str, slices: int) -> list[tuple[int, int]] | None:
        try:
            (low, high), = await self.fetch(f"SELECT min(_rowid_), max(_rowid_) FROM {self.capabilities.quote(table)}")
        except DatabaseError:  # a WITHOUT ROWID table: no range to cut
            return None
        if low is None:
            return []
        width = max(1, -(-(high - low + 1) // max(1, slices)))  # rowids are dense where rows were only added
        return [(start, min(start + width, high + 1)) for start in range(low, high + 1, width)]

    async def fingerprints(self, table: str, key: str, columns: Sequence[LiveColumn], *, batch_rows: int,
                           keys: Sequence[Any] | None = None, share: tuple[int, int] = (0, 1),
                           changes: StorageChanges | None = None) -> AsyncIterator[tuple[list[Any], list[bytes]]]:
        if changes is not None:
            async for batch in self._changed_rows(table, key, columns, changes):
                yield batch
            return
        # SQLite cannot hash, so the rows come here: text as bytes (no UTF-8 decoding, a third of the
        # cost), then one C-speed marshalling and 128-bit XXH3 per row; marshal keeps types and NULLs apart.
        q = self.capabilities.quote
        sql = f"SELECT {q(key)}, {', '.join(q(c.name) for c in columns)} FROM {q(table)}"
        params: Sequence[Any] = ()
        if keys is not None:
            sql, params = f"{sql} WHERE {q(key)} IN ({self.capabilities.placeholders(len(keys))})", keys
        elif share[1] > 1:
            sql, params = f"{sql} WHERE _rowid_ % ? = ?", share[::-1]
        with _translated(self.url):
            with self._text_as_bytes():
                cursor = await self._db.execute(sql, params)
            try:
                while True:
                    with self._text_as_bytes():  # not across the yield: the caller may read text meanwhile
                        rows = await cursor.fetchmany(batch_rows)
                    if not rows:
                        break
                    yield _fingerprinted(list(rows))
            finally:
                await cursor.close()

    async def _changed_rows(self, table: str, key: str, columns: Sequence[LiveColumn],
                            changes: StorageChanges) -> AsyncIterator[tuple[list[Any], list[bytes]]]:
        """Keys and fingerprints of the rows on the leaves that changed (their rowids: ``changes.changed``)."""
        q = self.capabilities.quote
        select = f"SELECT {q(key)}, {', '.join(q(c.name) for c in columns)} FROM {q(table)} WHERE _rowid_ IN "
        rowids = sorted(changes.changed)
        for start in range(0, len(rowids), _ROWIDS_PER_QUERY):
            some = rowids[start:start + _ROWIDS_PER_QUERY]
            with _translated(self.url), self._text_as_bytes():
                rows = list(await self._db.execute_fetchall(f"{select}({self.capabilities.placeholders(len(some))})", some))
            yield _fingerprinted(cast("list[Row]", rows))

    async def storage_changes(self, remembered: Mapping[str, Any]) -> dict[str, StorageChanges] | None:
        # Text may come as bytes here: a scan on this connection may be reading text as bytes meanwhile.
        if self.url.is_memory or not remembered or _text((await self.fetch("PRAGMA journal_mode"))[0][0]) == "wal":
            return None  # in WAL mode the newest pages are in the log, not in the file
        roots = {_text(name): root for name, root in
                 await self.fetch("SELECT name, rootpage FROM sqlite_master WHERE type = 'table'")}
        requests = {name: LeafRequest(roots[name], units, True) if isinstance(units, Leaves)
                    else LeafRequest(roots[name], None, False) for name, units in remembered.items() if name in roots}
        reports = await leaf_reports_in_child(str(Path(str(self.url.database)).resolve()), requests)
        if reports is None:
            return None
        return {name: StorageChanges(r.units, r.rows, r.changed_rowids if requests[name].rowids else None,
                                     len(r.changed_rowids)) for name, r in reports.items()}

    @contextlib.contextmanager
    def _text_as_bytes(self) -> Iterator[None]:
        self._db.text_factory = bytes
        try:
            yield
        finally:
            self._db.text_factory = str

    async def fingerprint_summary(self, table: str, key: str,
                                  columns: Sequence[LiveColumn]) -> tuple[int, int] | None:
        return None

    async def fingerprint_scope(self, table: str) -> str:
        return ""  # a fingerprint hashes the row's values: comparable whenever they are

    async def write(self, table: str, columns: Sequence[str], rows: Sequence[Row]) -> None:
        q = self.capabilities.quote
        sql = (f"INSERT INTO {q(table)} ({', '.join(q(c) for c in columns)}) "
               f"VALUES ({self.capabilities.placeholders(len(columns))})")
        with _translated(self.url):
            await self._db.executemany(sql, rows)

    def row_stream(self, table: str, columns: Sequence[str]) -> None:
        return None  # each batch is one executemany

    def line_writer(self, table: str, columns: Sequence[LiveColumn]) -> None:
        return None  # rows go to ``write`` as they are

    async def reset_sequence(self, table: str, column: str) -> None:
        # INTEGER PRIMARY KEY takes max(rowid)+1 by itself; only AUTOINCREMENT tables keep a counter.
        if await self.fetch("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'"):
            q = self.capabilities.quote
            await self.execute(
                f"UPDATE sqlite_sequence SET seq = (SELECT coalesce(max({q(column)}), 0) FROM {q(table)}) "
                "WHERE name = ?", table)

    async def foreign_keys(self, table: str) -> set[tuple[str, str, str]]:
        rows = await self.fetch('SELECT "from", "table", "to" FROM pragma_foreign_key_list(?)', table)
        return {(str(c), str(p), str(pc)) for c, p, pc in rows}

    async def indexes_blocking_drop(self, table: str, column: str) -> list[str]:
        rows = await self.fetch(
            "SELECT il.name FROM pragma_index_list(?) il JOIN pragma_index_info(il.name) ii "
            "WHERE ii.name = ? AND il.origin = 'c'", table, column)
        return sorted({r[0] for r in rows})

    async def database_size(self) -> int:
        # Pages freed by a delete do not count; the backup API only reads the source.
        rows = await self.fetch("SELECT (page_count - freelist_count) * page_size "
                                "FROM pragma_page_count(), pragma_freelist_count(), pragma_page_size()")
        return int(rows[0][0])


async def connect(url: DatabaseURL, *, read_only: bool = False, blocking_reads: bool = False) -> SQLiteConnection:
    return await SQLiteConnection.open(url, read_only=read_only, blocking_reads=blocking_reads)


def _create_private(path: Path) -> None:
    """A database we create holds private data: make the (empty, valid) file 0600 before SQLite
    opens it; its journal and WAL files take the same mode. An existing file is left as it is."""
    with contextlib.suppress(FileExistsError):
        os.close(create_private_file(path))


def _text(value: Any) -> Any:
    return value.decode() if type(value) is bytes else value


def _decoded(keys: list[Any]) -> list[Any]:
    """Keys read as bytes (text) or integers, text decoded back (a lone surrogate as it was written)."""
    if keys and type(keys[0]) is bytes:
        try:
            return list(map(bytes.decode, keys))
        except (TypeError, UnicodeDecodeError):  # mixed types or a lone surrogate: one by one
            return [k.decode("utf-8", "surrogatepass") if type(k) is bytes else k for k in keys]
    return keys


def _fingerprinted(rows: list[Row]) -> tuple[list[Any], list[bytes]]:
    """Keys (text keys decoded back) and fingerprints of rows read as (key, *values) with bytes text.

    marshal at version 2 (no back-references, so equal values always give equal bytes) keeps types and
    NULLs apart like pickle, at half its cost; ``map`` keeps the per-row work in C. XXH3-128 rather than
    SHA-1: a print only has to change when the row does (no one is defended against by it: whoever can
    write the source can write anything), and it hashes the row's ≈ 1.5 KB at several times the speed."""
    keys = _decoded(list(map(itemgetter(0), rows)))
    dumped = map(marshal.dumps, cast("list[tuple[Any, ...]]", rows), repeat(2, len(rows)))
    return keys, list(map(xxhash.xxh3_128_digest, dumped))
