"""The public API: export, import and stream a Memoria database. The CLI and HTTP API call these."""

from __future__ import annotations

import contextlib
import sys
import time
import zlib
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable, Sequence

import anyio

if sys.version_info < (3, 11):  # a builtin from 3.11; anyio brings the backport before
    from exceptiongroup import BaseExceptionGroup

from memoria_stream.codecs.base import Event
from memoria_stream.codecs import DEFAULT_MAX_LINE, decoder_for, encoder_for, normalise_format
from memoria_stream.drivers import connect
from memoria_stream.transfer.export import BATCH_ROWS, OnBatch, export_tables, resolve_tables
from memoria_stream.transfer.load import import_events
from memoria_stream.transfer.pipeline import channel, root_cause
from memoria_stream.transfer.reports import RunReport
from memoria_stream.codecs.streams import Source, format_from_name, open_sink, open_source, sniff_format, source_name
from memoria_stream.drivers.urls import resolve_url


async def export_data(
    destination: str | Path,
    *,
    database_url: str | None = None,
    format: str | None = None,
    tables: Sequence[str] | None = None,
    batch_rows: int = BATCH_ROWS,
    on_batch: OnBatch | None = None,
    on_counts: Callable[[dict[str, int]], None] | None = None,
) -> RunReport:
    """Export to a file path (``.gz`` compresses) or ``-`` for stdout; returns per-table counts."""
    started = time.perf_counter()
    fmt = normalise_format(format) or format_from_name(str(destination)) or "json"
    encoder = encoder_for(fmt)
    gzip = str(destination).lower().endswith(".gz")
    async with connect(resolve_url(database_url)) as conn, open_sink(destination) as write:
        sink = _GzipWriter(write) if gzip else None
        report = await export_tables(conn, sink.write if sink else write, encoder, tables,
                                     batch_rows=batch_rows, on_batch=on_batch, on_counts=on_counts)
        if sink:
            await sink.close()
    report.seconds = time.perf_counter() - started
    return report


class _GzipWriter:
    """Compresses on the way to the sink, so a ``.gz`` export never holds more than a chunk."""

    def __init__(self, write: Callable[[bytes], Awaitable[Any]]) -> None:
        self._write = write
        self._zip = zlib.compressobj(6, zlib.DEFLATED, 31)

    async def write(self, data: bytes) -> None:
        out = self._zip.compress(data)
        if out:
            await self._write(out)

    async def close(self) -> None:
        await self._write(self._zip.flush())


@contextlib.asynccontextmanager
async def open_export_stream(
    *, database_url: str | None = None, format: str = "json", tables: Sequence[str] | None = None,
    on_report: Callable[[RunReport], None] | None = None,
) -> AsyncIterator[AsyncIterator[bytes]]:
    """``async with open_export_stream(...) as chunks: async for chunk in chunks`` — the export's
    bytes while they are read (for streamed HTTP responses). The database is read inside one
    snapshot; leaving the block early cancels the read and closes the connection."""
    encoder = encoder_for(format)
    send, receive = channel()
    async with connect(resolve_url(database_url)) as conn:
        # Validate the table names before the first byte is promised to anyone.
        await resolve_tables(conn, tables, RunReport("export"))

        async def produce() -> None:
            async with send:
                report = await export_tables(conn, send.send, encoder, tables)
            if on_report:
                on_report(report)

        try:
            async with anyio.create_task_group() as group:
                group.start_soon(produce)
                async with receive:
                    yield receive
                group.cancel_scope.cancel()
        except BaseExceptionGroup as failure:
            raise root_cause(failure) from None


async def import_data(
    source: Source,
    *,
    database_url: str | None = None,
    format: str | None = None,
    tables: Sequence[str] | None = None,
    truncate: bool = True,
    source_label: str | None = None,
    on_batch: OnBatch | None = None,
    on_counts: Callable[[dict[str, int]], None] | None = None,
    max_line_bytes: int = DEFAULT_MAX_LINE,
    allow_lossy: bool = False,
    accept_altered: bool = False,
) -> RunReport:
    """Import a file path, ``-`` (stdin), bytes or an async byte iterator into the database.

    The format is taken from ``format``, else sniffed from the content. The load is atomic.
    An NDJSON line longer than ``max_line_bytes`` is refused (memory stays bounded). Values a
    target column would store changed are refused unless ``allow_lossy`` (see ``import_events``).
    Rows that do not match the header's counts or the trailer roll the import back, unless ``accept_altered``."""
    started = time.perf_counter()
    label = source_label or source_name(source)
    async with open_events(source, label, format, max_line_bytes) as (fmt, events):
        async with connect(resolve_url(database_url)) as conn:
            report = await import_events(conn, events, source=label, tables=tables, truncate=truncate,
                                         on_batch=on_batch, on_counts=on_counts, allow_lossy=allow_lossy,
                                         check_completeness=True, accept_altered=accept_altered)
    report.format = fmt
    report.seconds = time.perf_counter() - started
    return report


@contextlib.asynccontextmanager
async def open_events(source: Source, label: str, format: str | None,
                      max_line_bytes: int = DEFAULT_MAX_LINE) -> AsyncIterator[tuple[str, AsyncIterator[Event]]]:
    """``async with open_events(...) as (format, events)``: an input decoded as it is read, its
    format taken from ``format`` or else sniffed from the content."""
    fmt = normalise_format(format)
    async with open_source(source, name=label) as stream:
        if fmt is None:
            fmt, stream = await sniff_format(stream, limit=max_line_bytes)
        yield fmt, decoder_for(fmt, max_line=max_line_bytes).events(stream, source=label)
