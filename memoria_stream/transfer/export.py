"""Export: read tables inside one snapshot, encode, write — two stages joined by a bounded queue."""

from __future__ import annotations

import contextlib
from functools import partial
from typing import Any, AsyncIterator, Awaitable, Callable, Sequence

import anyio

from memoria_stream import __version__
from memoria_stream.model.catalog import EXPORT_ORDER, get_table, insert_order
from memoria_stream.codecs.base import Encoder
from memoria_stream.transfer.completeness import ROW_DIGEST_KEY, trailer_object
from memoria_stream.drivers.base import Connection, count_rows
from memoria_stream.drivers.snapshots import joins_later, shared_snapshot
from memoria_stream.errors import DatabaseError, InputError, InternalError
from memoria_stream.transfer.export_slices import EncodedSlice, SliceRequest, batch_digest, encode_slice
from memoria_stream.transfer.pipeline import channel, run_stages
from memoria_stream.transfer.plans import ExportPlan, check_table_names, export_plan
from memoria_stream.transfer.reports import RunReport
from memoria_stream.transfer.worker import Worker
from memoria_stream.model.values import utc_now_iso

BATCH_ROWS = 5000
Write = Callable[[bytes], Awaitable[Any]]
OnBatch = Callable[[str, int, int], None]  # table, rows, bytes


async def resolve_tables(conn: Connection, requested: Sequence[str] | None, report: RunReport) -> list[str]:
    """The tables to export, parents first. Unknown requested names are an error, not a silent skip."""
    live = set(await conn.table_names())
    if not requested:
        missing = [name for name in EXPORT_ORDER if name not in live]
        for name in missing:
            report.warn(f"{name}: not in the source database; skipped")
        return [name for name in EXPORT_ORDER if name in live]
    names = check_table_names(requested)
    absent = [n for n in names if n not in live]
    if absent:
        raise InputError(f"not in the source database: {', '.join(absent)}")
    return insert_order(names)


async def export_tables(
    conn: Connection,
    write: Write,
    encoder: Encoder,
    tables: Sequence[str] | None = None,
    *,
    batch_rows: int = BATCH_ROWS,
    on_batch: OnBatch | None = None,
    on_counts: Callable[[dict[str, int]], None] | None = None,
) -> RunReport:
    """Write ``tables`` of ``conn`` through ``encoder``; counts and rows come from one snapshot."""
    report = RunReport("export", format=encoder.format_name)
    async with _snapshot(conn, encoder) as helper:
        names = await resolve_tables(conn, tables, report)
        plans = [await _plan(conn, name, report) for name in names]
        counts = {p.layout.name: await count_rows(conn, p.layout.name) for p in plans}
        if on_counts:
            on_counts(counts)
        report.metadata = run_metadata(conn, counts, {"exported_at": utc_now_iso(), "format": encoder.format_name})
        if encoder.rows_digest_kind:
            report.metadata[ROW_DIGEST_KEY] = encoder.rows_digest_kind
        await write(encoder.header(report.metadata))
        slicing = _Slicing(conn, helper, encoder, counts, batch_rows) if helper else None
        sums = await _stream(conn, plans, write, encoder, report, batch_rows, on_batch, slicing)
        written = {p.layout.name: report.table(p.layout.name).rows for p in plans}
        await write(encoder.footer(trailer_object(written, sums, encoder.rows_digest_kind)))
    for plan in plans:
        if report.table(plan.layout.name).rows != counts[plan.layout.name]:
            raise InternalError(f"{plan.layout.name}: counted {counts[plan.layout.name]} rows but read "
                               f"{report.table(plan.layout.name).rows} inside one snapshot")
    return report


async def _plan(conn: Connection, name: str, report: RunReport) -> ExportPlan:
    plan = export_plan(name, await conn.columns(name), conn.capabilities)
    table = get_table(name)
    if table:
        missing = [c for c in table.column_names if c not in plan.layout.columns]
        if missing:
            report.warn(f"{name}: the source lacks column(s) {', '.join(missing)}; exported without them")
    if plan.skipped_columns:
        report.warn(f"{name}: column(s) {', '.join(plan.skipped_columns)} are not Memoria's; not exported")
    return plan


def run_metadata(conn: Connection, counts: dict[str, int], first: dict[str, Any]) -> dict[str, Any]:
    """The metadata an export (or a copy) starts with: ``first`` (when and what), then Memoria's
    ``dialect`` and ``tables`` (names and row counts) and our ``generator``."""
    return {
        **first,
        "dialect": conn.capabilities.dialect,
        "tables": [{"name": name, "row_count": count} for name, count in counts.items()],
        "generator": f"memoria-stream {__version__}",
    }


async def _stream(conn: Connection, plans: list[ExportPlan], write: Write, encoder: Encoder,
                  report: RunReport, batch_rows: int, on_batch: OnBatch | None,
                  slicing: _Slicing | None) -> dict[str, int]:
    """Streams every table; returns each table's checksum (for the trailer)."""
    send, receive = channel()
    sums: dict[str, int] = {}

    async def read() -> None:
        async with send:
            for plan in plans:
                await send.send(("start", plan, None))
                ranges = await slicing.ranges(plan) if slicing else None
                if slicing and ranges:
                    await slicing.send(plan, ranges, lambda encoded: send.send(("slice", plan, encoded)))
                else:
                    async for raw in conn.read(plan.layout.name, plan.layout.columns, batch_rows=batch_rows):
                        await send.send(("rows", plan, plan.decode(raw)))
                await send.send(("end", plan, None))

    async def encode_and_write() -> None:
        index = 0
        first = True
        async with receive:
            async for kind, plan, rows in receive:
                layout = plan.layout
                if kind == "start":
                    table = report.table(layout.name)
                    await write(encoder.begin_table(layout, index))
                    index, first = index + 1, True
                elif kind in ("rows", "slice"):
                    if kind == "rows":
                        data, count = encoder.rows(layout, rows, first), len(rows)
                        digest = batch_digest(encoder, layout, rows, data)
                    else:  # encoded already, here or by the worker, each slice as not its table's first
                        data, count, digest = rows.data, rows.rows, rows.digest
                        if first and count:
                            data = data.removeprefix(encoder.row_separator)
                    first = first and not count
                    sums[layout.name] = sums.get(layout.name, 0) + digest
                    await write(data)
                    table = report.table(layout.name)
                    table.rows += count
                    table.bytes += len(data)
                    if on_batch:
                        on_batch(layout.name, count, len(data))
                else:
                    await write(encoder.end_table(layout))
                    report.table(layout.name).finish()

    await run_stages(read, encode_and_write)
    return sums


# --- two processes ------------------------------------------------------------------------------

# A database this large is exported by two processes (each slice about SLICE_ROWS rows): below it,
# starting the worker (about 0.2 s) would cost more than it saves.
SHARED_FROM_BYTES = 16 * 1024 * 1024
SLICE_ROWS = 1000


@contextlib.asynccontextmanager
async def _snapshot(conn: Connection, encoder: Encoder) -> AsyncIterator[_Helper | None]:
    """``conn`` inside its snapshot and, where the source is read in slices and is large, a helper
    that gives a worker process in the same snapshot, to encode every other slice (the other core)."""
    async with contextlib.AsyncExitStack() as stack:
        if not (conn.capabilities.sliced_reads and not conn.url.is_memory
                and await conn.database_size() >= SHARED_FROM_BYTES):
            await stack.enter_async_context(conn.snapshot())
            yield None
            return
        if await joins_later(conn):
            await stack.enter_async_context(conn.snapshot())
            # Checked again inside: the mode cannot change while the snapshot's lock is held.
            yield _Helper(stack, conn) if await joins_later(conn) else None
            return
        yield await _pinned_at_start(stack, conn)


async def _pinned_at_start(stack: contextlib.AsyncExitStack, conn: Connection) -> _Helper | None:
    """The worker pinned as the snapshot starts (SQLite in WAL mode: writers are held off while both
    start), or none where that cannot be done (a read-only file takes no write lock)."""
    async with contextlib.AsyncExitStack() as attempt:  # closed on the way out unless handed over
        try:
            worker = await attempt.enter_async_context(Worker(conn.url))
            await attempt.enter_async_context(shared_snapshot(conn, worker.pin))
        except (DatabaseError, InternalError):
            worker = None
        else:
            stack.push_async_exit(attempt.pop_all())
    if worker is None:
        await stack.enter_async_context(conn.snapshot())
        return None
    return _Helper(stack, conn, worker)


class _Helper:
    """The worker process, started when the first slices need it, so that the file's first bytes do
    not wait for a process to start (where it can join the snapshot late); none if it cannot start."""

    def __init__(self, stack: contextlib.AsyncExitStack, conn: Connection, worker: Worker | None = None) -> None:
        self.stack, self.conn, self._worker = stack, conn, worker
        self._tried = worker is not None

    async def worker(self) -> Worker | None:
        if not self._tried:
            self._tried = True
            async with contextlib.AsyncExitStack() as attempt:  # closed on the way out unless handed over
                try:
                    worker = await attempt.enter_async_context(Worker(self.conn.url))
                    await worker.pin(None)
                except (DatabaseError, InternalError):
                    return None
                self._worker = worker
                self.stack.push_async_exit(attempt.pop_all())
        return self._worker


class _Slicing:
    """Each table in slices, shared between this process and the worker as each frees (``send``)."""

    def __init__(self, conn: Connection, helper: _Helper, encoder: Encoder, counts: dict[str, int],
                 batch_rows: int) -> None:
        self.conn, self.helper, self.encoder = conn, helper, encoder
        self.counts, self.batch_rows = counts, batch_rows

    async def ranges(self, plan: ExportPlan) -> list[tuple[int, int]] | None:
        name = plan.layout.name
        if self.counts[name] < 2 * SLICE_ROWS or not await self.helper.worker():
            return None
        return await self.conn.row_ranges(name, -(-self.counts[name] // SLICE_ROWS))

    async def send(self, plan: ExportPlan, ranges: list[tuple[int, int]],
                   emit: Callable[[EncodedSlice], Awaitable[Any]]) -> None:
        """Every slice of ``ranges``, in order, to ``emit`` (``ranges`` found the worker started).
        Each slice goes to whichever side is free first, this process or the worker: which is the
        faster varies with the table and with what else the machine runs."""
        worker = await self.helper.worker()
        assert worker is not None
        request = partial(SliceRequest, plan.layout.name, plan.live, self.encoder.format_name,
                          batch_rows=self.batch_rows)
        slices = _Schedule(len(ranges))

        async def encode_here() -> None:
            while (at := await slices.take()) is not None:
                await slices.put(at, await encode_slice(self.conn, plan, self.encoder, ranges[at], self.batch_rows))

        async def encode_there() -> None:
            room = anyio.Semaphore(WORKER_AHEAD)  # a slice is taken only when the worker can start it
            asked_send, asked = channel(WORKER_AHEAD)

            async def answers() -> None:
                async with asked:
                    async for at in asked:
                        await slices.put(at, await worker.encoded())
                        room.release()

            async with anyio.create_task_group() as group:
                group.start_soon(answers)
                async with asked_send:
                    while True:
                        await room.acquire()
                        if (at := await slices.take()) is None:
                            break
                        await asked_send.send(at)
                        await worker.submit(request(within=ranges[at]))

        async with anyio.create_task_group() as group:
            group.start_soon(encode_here)
            group.start_soon(encode_there)
            async for encoded in slices.in_order():
                await emit(encoded)


# Slices asked of the worker and not yet answered: one to encode, one to start as it sends that.
WORKER_AHEAD = 2
# Slices handed out beyond the first not yet written: the most either side can run ahead of the
# other (and the encoded slices held waiting, each about SLICE_ROWS rows).
SLICES_AHEAD = 6


class _Schedule:
    """Slice numbers handed out in order to whichever side asks, at most ``SLICES_AHEAD`` past the
    first not yet written; encoded slices given back in number order."""

    def __init__(self, count: int) -> None:
        self.count = count
        self._next = self._written = 0
        self._done: dict[int, EncodedSlice] = {}
        self._changed = anyio.Condition()

    async def take(self) -> int | None:
        async with self._changed:
            while self._next < self.count and self._next - self._written >= SLICES_AHEAD:
                await self._changed.wait()
            if self._next >= self.count:
                return None
            self._next += 1
            return self._next - 1

    async def put(self, at: int, encoded: EncodedSlice) -> None:
        async with self._changed:
            self._done[at] = encoded
            self._changed.notify_all()

    async def in_order(self) -> AsyncIterator[EncodedSlice]:
        while self._written < self.count:
            async with self._changed:
                while self._written not in self._done:
                    await self._changed.wait()
                encoded = self._done.pop(self._written)
                self._written += 1
                self._changed.notify_all()
            yield encoded
