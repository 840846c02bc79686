"""What every codec provides: an encoder (rows -> bytes) and a decoder (bytes -> events)."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from functools import partial
from itertools import repeat
from operator import itemgetter
from typing import Any, AsyncIterator, Mapping, Protocol, Sequence

import orjson

from memoria_stream.model.types import JSON_NULL, ByteStream, ColumnType, Row

# A row key that lists the JSON columns holding the JSON literal null (as opposed to SQL NULL).
# Memoria drops keys that are not model columns, so files carrying it still import into Memoria.
JSON_NULL_KEY = "$json_null"


@dataclass(frozen=True)
class TableLayout:
    """The columns a table is written with, and where its JSON and bytes columns are."""

    name: str
    columns: tuple[str, ...]
    types: tuple[ColumnType, ...]

    @property
    def json_positions(self) -> tuple[int, ...]:
        return tuple(i for i, t in enumerate(self.types) if t is ColumnType.JSON)

    @property
    def bytes_positions(self) -> tuple[int, ...]:
        return tuple(i for i, t in enumerate(self.types) if t is ColumnType.BYTES)


def row_objects(layout: TableLayout, rows: Sequence[Row]) -> list[dict[str, Any]]:
    """Canonical row tuples as the dicts a file holds (JSON null recorded under ``JSON_NULL_KEY``)."""
    columns = layout.columns
    json_at = layout.json_positions
    bytes_at = layout.bytes_positions
    # ``in`` over a column, and the dicts built by ``map``, keep the usual batch (no JSON null, no
    # bytes) out of a Python loop per row: export time is spent per row.
    if not bytes_at and not any(JSON_NULL in map(itemgetter(i), rows) for i in json_at):
        return list(map(dict, map(zip, repeat(columns), rows)))
    out = []
    for row in rows:
        obj = dict(zip(columns, row))
        nulls = [columns[i] for i in json_at if row[i] is JSON_NULL]
        for name in nulls:
            obj[name] = None
        for i in bytes_at:
            if row[i] is not None:
                obj[columns[i]] = base64.b64encode(row[i]).decode()
        if nulls:
            obj[JSON_NULL_KEY] = nulls
        out.append(obj)
    return out


@dataclass
class Metadata:
    """The ``metadata`` object of a file (Memoria's keys first; extras kept as found)."""

    values: dict[str, Any] = field(default_factory=dict)
    line: int | None = None

    @property
    def table_names(self) -> list[str]:
        tables = self.values.get("tables")
        if not isinstance(tables, list):
            return []
        return [t["name"] for t in tables if isinstance(t, dict) and isinstance(t.get("name"), str)]


@dataclass
class TableStart:
    """A table appears in the input (possibly with no rows)."""

    table: str
    line: int | None = None


@dataclass
class RowBatch:
    """Rows of one table as parsed objects, with where each came from: NDJSON lines, or the row's
    position in its table's list (JSON, where a parser has no useful line numbers)."""

    table: str
    rows: list[Any]
    first_line: int
    size: int = 0
    lines: list[int] | None = None  # NDJSON: the line of each row
    by_row: bool = False  # JSON: positions count rows within the table
    digest: int = 0  # the decoder's ``rows_digest`` of the rows as encoded (0 where it has none)


@dataclass
class Trailer:
    """The object a file of ours ends with: per table, the rows written and their content digest
    (``{"tables": [{"name", "row_count", "digest"}]}``, see ``completeness.py``)."""

    values: dict[str, Any] = field(default_factory=dict)
    line: int | None = None


Event = Metadata | TableStart | RowBatch | Trailer


class Encoder(Protocol):
    format_name: str
    media_type: str
    extension: str

    def header(self, metadata: Mapping[str, Any]) -> bytes: ...

    def begin_table(self, layout: TableLayout, index: int) -> bytes: ...

    def rows(self, layout: TableLayout, rows: Sequence[Row], first_in_table: bool) -> bytes: ...

    def end_table(self, layout: TableLayout) -> bytes: ...

    def footer(self, trailer: Mapping[str, Any]) -> bytes: ...

    # What a file's trailer digests: ``None``, the canonical checksum ``verify`` computes
    # (``transfer/digests.py``); otherwise the name of a digest of the encoded rows, which the
    # encoder computes from the bytes it wrote (``rows_digest``) and its decoder from the bytes it
    # read (``RowBatch.digest``), both far cheaper than digesting canonical values.
    rows_digest_kind: str | None
    # What ``rows`` puts before a batch that is not its table's first (JSON: a comma; NDJSON:
    # nothing, a line per row). Batches can so be encoded apart, by another process, each as not
    # first: the table's first one written drops this prefix, and the file is the same bytes.
    row_separator: bytes

    def rows_digest(self, data: bytes) -> int: ...


class Decoder(Protocol):
    format_name: str

    def events(self, stream: ByteStream, *, source: str) -> AsyncIterator[Event]: ...


_OUTPUT_OPTION = orjson.OPT_NON_STR_KEYS


def dumps(value: Any, *, indent: bool = False) -> bytes:
    """The one place orjson options are chosen for output."""
    return orjson.dumps(value, option=_OUTPUT_OPTION | (orjson.OPT_INDENT_2 if indent else 0))


# ``dumps`` without indent, for a value per row: orjson called directly, no Python frame per call.
dumps_compact = partial(orjson.dumps, option=_OUTPUT_OPTION)
