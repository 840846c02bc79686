"""The one bulk load a loader keeps open across a table's batches, where the driver offers one
(``Connection.row_stream``: PostgreSQL's COPY)."""

from __future__ import annotations

import contextlib
from types import TracebackType
from typing import Sequence

from memoria_stream.drivers.base import Connection, RowStream
from memoria_stream.model.types import Row

# A load is ended, and the next begun, after this many bytes of rows: the server reports an error
# in a load's rows (a duplicate key, say) as the load ends, so a failing import stops within this.
STREAM_BYTES = 64 * 1024 * 1024


class OpenStream:
    """``async with OpenStream(conn) as streams``: ``write`` keeps one table's load open from batch
    to batch; ``close`` (before anything else uses the connection) or the block's end finishes it,
    raising the load's error; an error leaving the block abandons it."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.table: str | None = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._stream: RowStream | None = None
        self._bytes = 0

    async def __aenter__(self) -> OpenStream:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close(exc)

    async def write(self, table: str, columns: Sequence[str], rows: Sequence[Row], size: int) -> bool:
        """Write ``rows`` through ``table``'s open load, begun here if need be; False (nothing
        written) where the driver has no such load."""
        if self._stream is None or self.table != table or self._bytes >= STREAM_BYTES:
            await self.close()
            opened = self.conn.row_stream(table, columns)
            if opened is None:
                return False
            stack = contextlib.AsyncExitStack()
            self._stream = await stack.enter_async_context(opened)
            self._stack, self.table, self._bytes = stack, table, 0
        await self._stream.write(rows)
        self._bytes += size
        return True

    async def close(self, exc: BaseException | None = None) -> None:
        """Finish the open load, if any (its error raised here), or abandon it given ``exc``."""
        stack, self._stack, self._stream, self.table = self._stack, None, None, None
        if stack is None:
            return
        if exc is None:
            await stack.aclose()
        else:
            await stack.__aexit__(type(exc), exc, exc.__traceback__)
