"""JSON: ``{"metadata": …, "data": {table: [rows]}, "trailer": …}``, written indented and parsed incrementally.

We write ``metadata`` first, tables parent-before-child, and the ``trailer`` last (Memoria reads only
``metadata`` and ``data``). Memoria writes ``data`` first with tables in alphabetical order; the
decoder accepts any key order and streams rows either way. Any other top-level key is skipped
without being built, and nesting is capped for the whole document.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, AsyncIterator, Mapping, Sequence

import ijson

from memoria_stream.errors import InputError
from memoria_stream.model.types import ByteStream, Row
from memoria_stream.codecs.base import Event, Metadata, RowBatch, TableLayout, TableStart, Trailer, dumps, row_objects

BATCH_ROWS = 1000
MAX_DEPTH = 512  # as deep as a value may nest (orjson, for NDJSON, stops at 1024 levels)
_ROW_INDENT = b"\n      "


class JSONEncoder:
    format_name = "json"
    media_type = "application/json"
    extension = ".json"

    def header(self, metadata: Mapping[str, Any]) -> bytes:
        body = dumps(metadata, indent=True).replace(b"\n", b"\n  ")
        return b'{\n  "metadata": ' + body + b',\n  "data": {'

    def begin_table(self, layout: TableLayout, index: int) -> bytes:
        return (b"," if index else b"") + b"\n    " + dumps(layout.name) + b": ["

    def rows(self, layout: TableLayout, rows: Sequence[Row], first_in_table: bool) -> bytes:
        parts = [b"\n      " + dumps(obj, indent=True).replace(b"\n", _ROW_INDENT)
                 for obj in row_objects(layout, rows)]
        return (b"" if first_in_table else self.row_separator) + b",".join(parts)

    def end_table(self, layout: TableLayout) -> bytes:
        return b"\n    ]"

    def footer(self, trailer: Mapping[str, Any]) -> bytes:
        body = dumps(trailer, indent=True).replace(b"\n", b"\n  ")
        return b'\n  },\n  "trailer": ' + body + b"\n}\n"

    # A row's bytes depend on where it sits in the indented document: its canonical values are digested.
    rows_digest_kind: str | None = None
    row_separator = b","

    def rows_digest(self, data: bytes) -> int:
        raise NotImplementedError("JSON files carry the canonical checksum")


class _Reader:
    """The ``async read(n)`` object ijson wants, over our async byte stream."""

    def __init__(self, stream: ByteStream) -> None:
        self._stream = stream
        self._buffer = b""
        self.consumed = 0

    async def read(self, size: int = -1) -> bytes:
        if not self._buffer:
            self._buffer = await anext(self._stream, b"")
        chunk, self._buffer = (self._buffer, b"") if size < 0 else (self._buffer[:size], self._buffer[size:])
        self.consumed += len(chunk)
        return chunk


class JSONDecoder:
    format_name = "json"

    def __init__(self, *, batch_rows: int = BATCH_ROWS) -> None:
        self.batch_rows = batch_rows

    async def events(self, stream: ByteStream, *, source: str) -> AsyncIterator[Event]:
        reader = _Reader(stream)
        walker = _Walker(source, self.batch_rows)
        try:
            # basic_parse: no per-event path prefix, whose length grows with nesting depth.
            async for event, value in ijson.basic_parse_async(reader):
                for out in walker.feed(event, value):
                    yield out
        except ijson.JSONError as exc:
            where = f" near byte {reader.consumed}" if reader.consumed else ""
            detail = exc.args[0] if exc.args else ""
            text = detail.decode("utf-8", "replace") if isinstance(detail, bytes) else str(detail)
            reason = (text.strip().splitlines() or ["parse error"])[0]  # yajl adds a drawing below
            raise InputError(f"malformed JSON{where}: {reason}", source=source, table=walker.table,
                             column=walker.key, row=walker.index + 1 if walker.table else None) from None
        if not walker.finished:
            raise InputError("the JSON document ends early", source=source, table=walker.table)
        for out in walker.flush():
            yield out


class _Walker:
    """Turns ijson's flat event stream into metadata, table starts and row batches."""

    def __init__(self, source: str, batch_rows: int) -> None:
        self.source = source
        self.batch_rows = batch_rows
        self.depth = 0
        self.top_key: str | None = None
        self.table: str | None = None
        self.builder: ijson.ObjectBuilder | None = None
        self.key: str | None = None  # the column being read, for error messages
        self.builder_depth = 0
        self.batch: RowBatch | None = None
        self.index = 0
        self.finished = False
        self.skip_depth = 0  # > 0 while inside the value of an unknown top-level key

    def feed(self, event: str, value: Any) -> list[Event]:
        if event == "number" and isinstance(value, Decimal):
            # Decimals, not ijson's use_float=True: that option makes yajl reject -2**63.
            value = float(value)
        if self.builder is not None:
            return self._build(event, value)
        opens, closes = event in ("start_map", "start_array"), event in ("end_map", "end_array")
        if self.skip_depth:
            self._skip(opens, closes)
            return []
        out: list[Event] = []
        if self.depth == 0 and event != "start_map":
            raise InputError("expected a JSON object at the top level", source=self.source)
        if self.depth == 1 and event == "map_key":
            self.top_key = value
        elif self.depth == 1 and self.top_key in ("metadata", "trailer") and not closes:
            self._start_builder(event, value)
            return out
        elif self.depth == 1 and self.top_key != "data" and not closes:
            if opens:  # an unknown key's value is walked past, never built (Memoria ignores it too)
                self._skip(opens, closes)
            return out
        elif self.depth == 1 and self.top_key == "data" and event != "start_map" and not closes:
            raise InputError('"data" must be an object of tables', source=self.source)
        elif self.depth == 2 and self.top_key == "data" and event == "map_key":
            out += self.flush()
            self.table, self.index = value, 0
            out.append(TableStart(value))
        elif self.depth == 2 and self.top_key == "data" and event != "start_array" and not closes:
            raise InputError("expected a list of rows", source=self.source, table=self.table)
        elif self.depth == 3 and self.top_key == "data" and not closes:
            if event != "start_map":
                raise InputError(f"row {self.index + 1} is not an object", source=self.source, table=self.table)
            self._start_builder(event, value)
            return out
        if opens:
            self.depth += 1
        elif closes:
            if self.depth == 3 and self.top_key == "data":
                out += self.flush()  # end of a table's rows: keep events in file order
            self.depth -= 1
            self.finished = self.depth == 0
        return out

    def _skip(self, opens: bool, closes: bool) -> None:
        if opens:
            self.skip_depth += 1
            self._check_depth(self.depth + self.skip_depth)
        elif closes:
            self.skip_depth -= 1

    def _check_depth(self, depth: int) -> None:
        if depth > MAX_DEPTH:  # the whole document is capped, whichever key the nesting sits under
            in_row = self.builder is not None and self.top_key == "data"
            raise InputError(f"nesting deeper than {MAX_DEPTH} levels", source=self.source,
                             table=self.table if in_row else None, row=self.index + 1 if in_row else None,
                             column=self.key if in_row else None)

    def _start_builder(self, event: str, value: Any) -> None:
        self.builder, self.key = ijson.ObjectBuilder(), None
        self.builder.event(event, value)
        self.builder_depth = 1 if event in ("start_map", "start_array") else 0
        if self.builder_depth == 0:
            self._finish_value()

    def _build(self, event: str, value: Any) -> list[Event]:
        assert self.builder is not None
        self.builder.event(event, value)
        if event == "map_key" and self.builder_depth == 1:
            self.key = value
        if event in ("start_map", "start_array"):
            self.builder_depth += 1
            self._check_depth(self.depth + self.builder_depth)
        elif event in ("end_map", "end_array"):
            self.builder_depth -= 1
        if self.builder_depth == 0:
            return self._finish_value()
        return []

    def _finish_value(self) -> list[Event]:
        assert self.builder is not None
        value, self.builder = self.builder.value, None
        if self.top_key == "metadata" and self.depth == 1:
            return [Metadata(value if isinstance(value, dict) else {})]
        if self.top_key == "trailer" and self.depth == 1:
            return [Trailer(value if isinstance(value, dict) else {})]
        self.index += 1
        assert self.table is not None
        if self.batch is None:
            self.batch = RowBatch(self.table, [], self.index, by_row=True)
        self.batch.rows.append(value)
        if len(self.batch.rows) >= self.batch_rows:
            return self.flush()
        return []

    def flush(self) -> list[Event]:
        batch, self.batch = self.batch, None
        return [batch] if batch is not None else []
