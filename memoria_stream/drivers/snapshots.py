"""Several read connections that all see the same moment of one database (``copy --jobs N``).

Each backend has its own way to start N snapshots at one instant:

- PostgreSQL exports the first transaction's snapshot (``pg_export_snapshot``) and the others
  adopt it (``SET TRANSACTION SNAPSHOT``) — the very same snapshot, by the server's guarantee.
- MySQL/MariaDB has no shared snapshot, so writes to the copied tables are held off with
  ``LOCK TABLES … READ`` on a guard connection while the N consistent snapshots start, then released.
- SQLite likewise: a guard connection takes the write lock (``BEGIN IMMEDIATE``) so that no writer
  can commit while the N read transactions start, then rolls back. In WAL mode the guard pins one
  moment. In rollback-journal mode the first reader's shared lock holds commits off by itself, but
  a writer that has begun to commit waits for that lock while shutting new readers out: the next
  reader would wait for the writer, which waits for the first reader. Under the guard no writer is
  committing. Where the guard cannot be had (a file this user may only read), the readers start
  without it.

A snapshot that joins one already held (``join_snapshot``) never waits for a lock: in rollback-journal
mode the only holder it could meet is such a committing writer, so it fails at once (and the caller
carries on without it) instead of deadlocking. The guard is held for milliseconds; the snapshots
last for the whole copy.
"""

from __future__ import annotations

import contextlib
from typing import AsyncIterator, Awaitable, Callable, Optional, Sequence

from memoria_stream.drivers import connect
from memoria_stream.drivers.base import Connection, shielded
from memoria_stream.errors import DatabaseError


Pinned = Callable[[Optional[str]], Awaitable[None]]  # starts the other snapshots, given the adopting statement


@contextlib.asynccontextmanager
async def open_snapshots(url: str, count: int, tables: Sequence[str] = ()) -> AsyncIterator[list[Connection]]:
    """``count`` connections to ``url``, each inside a read snapshot of the same moment.

    ``tables`` are the tables that will be read (MySQL locks only those while the snapshots start)."""
    async with contextlib.AsyncExitStack() as stack:
        first = await stack.enter_async_context(connect(url))
        if count <= 1:
            await stack.enter_async_context(first.snapshot())
            yield [first]
            return
        others = [await stack.enter_async_context(connect(url)) for _ in range(count - 1)]

        async def pin_others(adopt: str | None) -> None:
            for conn in others:
                await stack.enter_async_context(join_snapshot(conn, adopt))

        await _STARTERS[first.capabilities.dialect](stack, first, pin_others, tables)
        yield [first, *others]


@contextlib.asynccontextmanager
async def shared_snapshot(conn: Connection, pin_others: Pinned, tables: Sequence[str] = ()) -> AsyncIterator[None]:
    """``conn`` inside a read snapshot, started so that ``pin_others`` — called while it starts, with
    the statement that adopts it (or None) — can start snapshots of the same moment elsewhere (other
    processes, with ``join_snapshot``). ``tables``: as for ``open_snapshots``."""
    async with contextlib.AsyncExitStack() as stack:
        await _STARTERS[conn.capabilities.dialect](stack, conn, pin_others, tables)
        yield


@contextlib.asynccontextmanager
async def join_snapshot(conn: Connection, adopt: str | None) -> AsyncIterator[None]:
    """``conn`` inside a read snapshot started while ``shared_snapshot`` or ``open_snapshots`` holds
    the moment (``adopt``: the statement they handed over, run first)."""
    async with conn.snapshot(wait=False):
        if adopt:
            await conn.execute(adopt)
        yield


async def _postgres(stack: contextlib.AsyncExitStack, first: Connection, pin_others: Pinned,
                    tables: Sequence[str]) -> None:
    await stack.enter_async_context(first.snapshot())
    snapshot_id = (await first.fetch("SELECT pg_export_snapshot()"))[0][0]
    # Must be the first statement of the adopting transaction; the id is the server's own token.
    await pin_others(f"SET TRANSACTION SNAPSHOT '{snapshot_id}'")


async def _mysql(stack: contextlib.AsyncExitStack, first: Connection, pin_others: Pinned,
                 tables: Sequence[str]) -> None:
    async with connect(first.url) as guard:
        live = set(await guard.table_names())
        locked = [t for t in tables if t in live]
        if locked:
            q = guard.capabilities.quote
            await guard.execute("LOCK TABLES " + ", ".join(f"{q(t)} READ" for t in locked))
        try:
            await stack.enter_async_context(first.snapshot())
            await pin_others(None)
        finally:
            if locked:
                await shielded(guard.execute("UNLOCK TABLES"))


async def _sqlite(stack: contextlib.AsyncExitStack, first: Connection, pin_others: Pinned,
                  tables: Sequence[str]) -> None:
    # Every connection to :memory: is a different, empty database.
    if first.url.is_memory:
        await stack.enter_async_context(first.snapshot())
        await pin_others(None)
        return
    async with connect(first.url) as guard:
        try:
            await guard.execute("BEGIN IMMEDIATE")
        except DatabaseError:
            if not await joins_later(first):
                raise  # WAL mode: without the guard the readers could pin different moments
            guarded = False  # read-only here: the first reader's shared lock holds commits off
        else:
            guarded = True
        try:
            await stack.enter_async_context(first.snapshot())
            await pin_others(None)
        finally:
            if guarded:
                await shielded(guard.execute("ROLLBACK"))


async def joins_later(conn: Connection) -> bool:
    """Whether a snapshot that another connection starts later, while ``conn``'s snapshot lasts, sees
    the same moment (``join_snapshot(other, None)`` at any time): SQLite outside WAL mode, where the
    shared lock of ``conn``'s read transaction holds every commit off."""
    if conn.capabilities.dialect != "sqlite" or conn.url.is_memory:
        return False
    return bool((await conn.fetch("PRAGMA journal_mode"))[0][0] != "wal")


_STARTERS: dict[str, Callable[[contextlib.AsyncExitStack, Connection, Pinned, Sequence[str]],
                              Awaitable[None]]] = {
    "postgresql": _postgres, "mysql": _mysql, "sqlite": _sqlite,
}
