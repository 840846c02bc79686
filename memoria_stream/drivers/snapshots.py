"""Several read connections that all see the same moment of one database (``copy --jobs N``).

Each backend has its own way to start N snapshots at one instant:

- PostgreSQL exports the first transaction's snapshot (``pg_export_snapshot``) and the others
  adopt it (``SET TRANSACTION SNAPSHOT``) — the very same snapshot, by the server's guarantee.
- MySQL/MariaDB has no shared snapshot, so writes to the copied tables are held off with
  ``LOCK TABLES … READ`` on a guard connection while the N consistent snapshots start, then released.
- SQLite likewise: a guard connection takes the write lock (``BEGIN IMMEDIATE``) so that no writer
  can commit while the N read transactions pin their snapshot, then rolls back.

The guard is held for milliseconds; the snapshots last for the whole copy.
"""

from __future__ import annotations

import contextlib
from typing import AsyncIterator, Awaitable, Callable, Sequence

from memoria_stream.drivers import connect
from memoria_stream.drivers.base import Connection, shielded


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
        start = _STARTERS[first.capabilities.dialect]
        await start(stack, first, others, tables)
        yield [first, *others]


async def _postgres(stack: contextlib.AsyncExitStack, first: Connection, others: list[Connection],
                    tables: Sequence[str]) -> None:
    await stack.enter_async_context(first.snapshot())
    snapshot_id = (await first.fetch("SELECT pg_export_snapshot()"))[0][0]
    for conn in others:
        await stack.enter_async_context(conn.snapshot())
        # Must be the first statement of the transaction; the id is the server's own token.
        await conn.execute(f"SET TRANSACTION SNAPSHOT '{snapshot_id}'")


async def _mysql(stack: contextlib.AsyncExitStack, first: Connection, others: list[Connection],
                 tables: Sequence[str]) -> None:
    async with connect(first.url) as guard:
        live = set(await guard.table_names())
        locked = [t for t in tables if t in live]
        if locked:
            q = guard.capabilities.quote
            await guard.execute("LOCK TABLES " + ", ".join(f"{q(t)} READ" for t in locked))
        try:
            for conn in (first, *others):
                await stack.enter_async_context(conn.snapshot())
        finally:
            if locked:
                await shielded(guard.execute("UNLOCK TABLES"))


async def _sqlite(stack: contextlib.AsyncExitStack, first: Connection, others: list[Connection],
                  tables: Sequence[str]) -> None:
    if first.url.is_memory:  # every connection to :memory: is a different, empty database
        for conn in (first, *others):
            await stack.enter_async_context(conn.snapshot())
        return
    async with connect(first.url) as guard:
        await guard.execute("BEGIN IMMEDIATE")
        try:
            for conn in (first, *others):
                await stack.enter_async_context(conn.snapshot())
        finally:
            await shielded(guard.execute("ROLLBACK"))


_STARTERS: dict[str, Callable[[contextlib.AsyncExitStack, Connection, list[Connection], Sequence[str]],
                              Awaitable[None]]] = {
    "postgresql": _postgres, "mysql": _mysql, "sqlite": _sqlite,
}
