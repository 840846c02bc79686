"""NDJSON: a ``{"metadata": …}`` line, then one ``{"table": …, "data": {…}}`` line per row."""

from __future__ import annotations

from typing import Any, AsyncIterator, Mapping, Sequence

import orjson
from xxhash import xxh3_128_intdigest

from memoria_stream.errors import InputError
from memoria_stream.model.types import ByteStream, Row
from memoria_stream.codecs.diagnose import describe_failure, table_named
from memoria_stream.codecs.base import (
    Event, Metadata, RowBatch, TableLayout, TableStart, Trailer, dumps, dumps_compact, row_objects)

DEFAULT_MAX_LINE = 64 * 1024 * 1024
BATCH_ROWS = 2000
# With a few batches queued per stage, this bounds peak memory. It also keeps a batch's parsed rows
# (about 3.4 times its bytes, for long_term_memory) within the processor's caches while the import's
# plan converts them column by column: an import into PostgreSQL of 500k rows took 9.8–13.3 user
# CPU-s in 256 KB batches against 14.4–18.2 in 1 MB batches (benchmarks/RESULTS.md, 2026-12-07, second).
BATCH_BYTES = 256 * 1024
# The trailer's digest of an NDJSON file of ours (announced as the header's ``row_digest``): per
# table, the sum of the XXH3-128 of every row line (its bytes without the line end) mod 2**128.
# Any changed byte of a row line changes it, as a changed value changes the canonical checksum,
# at a tenth of the cost (0.09 against 0.95 CPU-s per 100,000 rows).
ROW_DIGEST = "xxh3-128/line"


def line_digest(line: bytes) -> int:
    return xxh3_128_intdigest(line[:-1] if line.endswith(b"\r") else line)  # CRLF files read alike


class NDJSONEncoder:
    format_name = "ndjson"
    media_type = "application/x-ndjson"
    extension = ".ndjson"

    def header(self, metadata: Mapping[str, Any]) -> bytes:
        return dumps({"metadata": metadata}) + b"\n"

    def begin_table(self, layout: TableLayout, index: int) -> bytes:
        return b""

    def rows(self, layout: TableLayout, rows: Sequence[Row], first_in_table: bool) -> bytes:
        # The bytes of ``dumps({"table": name, "data": obj})`` per line, without building that
        # wrapper per row: the row objects are dumped and joined between the fixed parts in C.
        if not rows:
            return b""
        start = b'{"table":' + dumps(layout.name) + b',"data":'
        return start + (b"}\n" + start).join(map(dumps_compact, row_objects(layout, rows))) + b"}\n"

    def end_table(self, layout: TableLayout) -> bytes:
        return b""

    def footer(self, trailer: Mapping[str, Any]) -> bytes:
        # A last line without a "table" key: Memoria's importer skips it.
        return dumps({"trailer": trailer}) + b"\n"

    rows_digest_kind: str | None = ROW_DIGEST
    row_separator = b""

    def rows_digest(self, data: bytes) -> int:
        """The sum of ``line_digest`` over the lines of ``data``, which ``rows`` ended each with a newline."""
        return sum(map(xxh3_128_intdigest, data.split(b"\n")[:-1]))


class NDJSONDecoder:
    format_name = "ndjson"

    def __init__(self, *, max_line: int = DEFAULT_MAX_LINE, batch_rows: int = BATCH_ROWS) -> None:
        self.max_line = max_line
        self.batch_rows = batch_rows

    async def events(self, stream: ByteStream, *, source: str) -> AsyncIterator[Event]:
        batch: RowBatch | None = None
        seen: set[str] = set()
        async for first, lines in _line_runs(stream, self.max_line, source):
            for number, line in enumerate(lines, first):
                if len(line) > self.max_line:
                    _too_long(line, self.max_line, source, number)
                obj = _parse(line, number, source)
                if obj is None:
                    continue
                if _is_header(obj):
                    # A header-less file keeps its first row: only a line shaped like a header is one.
                    yield Metadata(obj["metadata"] if isinstance(obj["metadata"], dict) else {}, number)
                    continue
                if _is_trailer(obj):
                    if batch is not None:
                        yield batch
                        batch = None
                    yield Trailer(obj["trailer"] if isinstance(obj["trailer"], dict) else {}, number)
                    continue
                table, data = _row(obj, number, source)
                if batch is not None and (batch.table != table or len(batch.rows) >= self.batch_rows
                                          or batch.size >= BATCH_BYTES):
                    yield batch
                    batch = None
                if table not in seen:
                    seen.add(table)
                    yield TableStart(table, number)
                if batch is None:
                    batch = RowBatch(table, [], number, lines=[])
                batch.rows.append(data)
                batch.lines.append(number)  # type: ignore[union-attr]
                batch.size += len(line)
                batch.digest += line_digest(line)
        if batch is not None:
            yield batch


def _is_header(obj: dict[str, Any]) -> bool:
    return "metadata" in obj and "table" not in obj


def _is_trailer(obj: dict[str, Any]) -> bool:
    return "trailer" in obj and "table" not in obj


def _parse(line: bytes, number: int, source: str) -> dict[str, Any] | None:
    if not line.strip():
        return None
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        reason, table, column = describe_failure(line, exc)
        raise InputError(reason, source=source, line=number, table=table, column=column) from None
    if not isinstance(obj, dict):
        raise InputError("expected a JSON object on this line", source=source, line=number)
    return obj


def _row(obj: dict[str, Any], number: int, source: str) -> tuple[str, dict[str, Any]]:
    table, data = obj.get("table"), obj.get("data")
    if not isinstance(table, str) or not table:
        raise InputError('expected {"table": …, "data": {…}}', source=source, line=number)
    if not isinstance(data, dict):
        raise InputError('"data" must be an object', source=source, line=number, table=table)
    return table, data


async def _line_runs(stream: ByteStream, max_line: int, source: str) -> AsyncIterator[tuple[int, list[bytes]]]:
    """Split a byte stream into lines, a chunk's worth at a time: ``(number of the first, lines)``.
    Splitting a whole chunk at once (in C) instead of yielding line by line saves an async step per
    line; memory holds the chunk and at most one unfinished line, which may not outgrow ``max_line``
    (the caller checks the length of every whole line, in order)."""
    pending = bytearray()
    done = 0  # lines yielded so far
    async for chunk in stream:
        if not chunk:
            continue
        lines = chunk.split(b"\n")
        if len(lines) > 1:
            if pending:
                lines[0] = bytes(pending + lines[0])
                pending.clear()
            rest = lines.pop()
            yield done + 1, lines  # each line's length is checked as it is read, in order
            done += len(lines)
        else:
            rest = chunk
        pending += rest
        if len(pending) > max_line:
            _too_long(pending, max_line, source, done + 1)
    if bytes(pending).strip():
        yield done + 1, [bytes(pending)]


def _too_long(head: bytes | bytearray, max_line: int, source: str, number: int) -> None:
    raise InputError(f"line longer than {max_line} bytes (see --max-line-bytes)", source=source, line=number,
                     table=table_named(bytes(head[:256])))
