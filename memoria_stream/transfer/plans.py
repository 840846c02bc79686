"""Per-table plans: which columns move, with which type, and how each value is converted.

Export plans turn raw driver values into canonical ones; import plans turn parsed file objects into
rows ready for the target driver. Table and column names reach SQL only when the catalogue or the
live schema knows them; they are always quoted by the driver.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Callable, Sequence

from memoria_stream.model.catalog import Table, default_for, get_table
from memoria_stream.model.columns import convert_column
from memoria_stream.codecs.base import JSON_NULL_KEY, RowBatch, TableLayout
from memoria_stream.drivers.base import Capabilities, LiveColumn
from memoria_stream.errors import InputError
from memoria_stream.transfer.limits import ColumnCheck, Loss, column_check, loss_check, value_check
from memoria_stream.model.types import JSON_NULL, ColumnType, Row
from memoria_stream.model.values import INPUT_COERCERS, json_as_text, json_from_text, unchanged

_PLAIN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_MISSING = object()


def column_type(table: Table | None, column: LiveColumn) -> ColumnType:
    known = table.column(column.name) if table else None
    return known.type if known else column.type


# --- export -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class ExportPlan:
    layout: TableLayout
    decoders: tuple[tuple[int, Callable[[Any], Any]], ...]
    skipped_columns: tuple[str, ...] = ()
    live: tuple[LiveColumn, ...] = ()  # the exported columns as the database described them
    json_text: bool = False  # JSON columns decode to their stored text, unparsed (see ``export_plan``)

    def decode(self, rows: Sequence[Row]) -> list[Row]:
        """Raw driver rows as canonical ones, decoded a column at a time (``convert_column``); a
        value that does not decode sends the batch row by row, to name it."""
        if not self.decoders or not rows:
            return list(rows)
        columns: list[Sequence[Any]] = list(zip(*rows))
        try:
            for i, decode in self.decoders:
                columns[i] = convert_column(decode, columns[i])
        except (ValueError, TypeError):
            return self._decode_rows(rows)
        return list(zip(*columns))

    def _decode_rows(self, rows: Sequence[Row]) -> list[Row]:  # rows become lists: decoded in place
        out: list[Row] = []
        for raw in rows:
            row = list(raw)
            for i, decode in self.decoders:
                value = row[i]
                if value is not None:
                    try:
                        row[i] = decode(value)
                    except (ValueError, TypeError) as exc:
                        raise InputError(f"stored value {value!r:.60} is not valid: {exc}",
                                         table=self.layout.name, column=self.layout.columns[i]) from None
            out.append(row)
        return out


def export_plan(name: str, live: Sequence[LiveColumn], caps: Capabilities, *, json_text: bool = False) -> ExportPlan:
    """Catalogue tables export their catalogue columns that exist live (as Memoria does); other
    tables export every live column. ``json_text``: JSON values stay the text they are stored as,
    for a target whose server parses (and refuses) JSON itself — a copy's parse and re-dump of
    every document would only repeat that work on the client, the bound of the load."""
    table = get_table(name)
    if table is not None:
        chosen = [c for c in live if table.column(c.name)]
        chosen.sort(key=lambda c: table.column_names.index(c.name))
        skipped = tuple(c.name for c in live if c.name not in table.column_names)
    else:
        chosen, skipped = list(live), ()
    types = tuple(column_type(table, c) for c in chosen)
    layout = TableLayout(name, tuple(c.name for c in chosen), types)
    chosen_decoders = {**caps.decoders, ColumnType.JSON: json_as_text} if json_text else caps.decoders
    decoders = tuple((i, chosen_decoders[t]) for i, t in enumerate(types) if t in chosen_decoders)
    return ExportPlan(layout, decoders, skipped, tuple(chosen), json_text)


# --- import -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Slot:
    name: str
    convert: Callable[[Any], Any]  # coerce file value, then encode for the driver
    encode: Callable[[Any], Any]  # encode an already canonical value (defaults, JSON null)
    default: Callable[[], Any] | None
    required: bool
    is_json: bool
    # Value types ``convert`` returns unchanged: a column holding only these needs no per-value call.
    unchanged: frozenset[type] = frozenset()
    # For a column with limits: checks a whole column of such values at once (``limits.column_check``).
    fits: ColumnCheck | None = None
    # For a column that keeps less than some values hold: counts them (part of ``convert``/``encode``).
    loss: Loss | None = None
    # Encodes a value this program supplies (a default, JSON null): never counted as a loss.
    encode_own: Callable[[Any], Any] = lambda value: value


# Canonical input types that coerce to themselves (when the backend has no encoder for the type).
_UNCHANGED = {
    ColumnType.TEXT: frozenset({str}), ColumnType.INTEGER: frozenset({int}),
    ColumnType.FLOAT: frozenset({float}), ColumnType.BOOLEAN: frozenset({bool}),
}
_NONE = type(None)
_JSON_NULL_TYPE = type(JSON_NULL)
Canonical = tuple[TableLayout, Sequence[Row]]  # rows of canonical values, in the layout's column order


class ImportPlan:
    """Turns file rows of one table into driver-ready tuples in the target's live column order."""

    def __init__(self, name: str, live: Sequence[LiveColumn], caps: Capabilities, warn: Callable[[str], None]):
        table = get_table(name)
        self.name = name
        self.columns = tuple(c.name for c in live)
        self._known = frozenset(self.columns) | {JSON_NULL_KEY}
        self._catalogue = frozenset(table.column_names) if table else frozenset()
        self._warn = warn
        self._dropped: set[str] = set()
        self._slots = tuple(_slot(table, c, caps) for c in live)
        self.losses = tuple(s.loss for s in self._slots if s.loss is not None)
        # The columns a ``"$json_null"`` marker may name: the JSON columns live or in the catalogue.
        self._json_columns = frozenset(s.name for s in self._slots if s.is_json) | frozenset(
            c.name for c in (table.columns if table else ()) if c.type is ColumnType.JSON)
        self.autoincrement = next((c.name for c in table.columns if c.autoincrement), None) if table else None
        self._from_canonical: dict[tuple[TableLayout, bool], Callable[[Row], Row]] = {}
        self.json_text = False  # some rows came with JSON as unparsed text (``from_canonical``)

    def from_canonical(self, layout: TableLayout, rows: Sequence[Row], *, json_text: bool = False) -> list[Row]:
        """Rows of canonical values (a database read, in ``layout`` order) as driver-ready tuples.
        ``json_text``: JSON columns hold stored JSON text, passed on as it is for a server that
        parses it itself (``Capabilities.checks_json``); :meth:`name_bad_json` explains a refusal."""
        self.json_text |= json_text
        counted = [loss.count for loss in self.losses]
        try:
            fast = self._from_canonical_columns(layout, rows, json_text)
        except (ValueError, TypeError, OverflowError):
            fast = None
        if fast is not None:
            return fast
        for loss, count in zip(self.losses, counted):  # the row-by-row path counts them again
            loss.count = count
        convert = self._from_canonical.get((layout, json_text))
        if convert is None:
            convert = self._from_canonical[layout, json_text] = self._canonical_converter(layout, json_text)
        try:
            return [convert(row) for row in rows]
        except (ValueError, TypeError, OverflowError) as exc:
            raise InputError(str(exc), table=self.name) from None

    def name_bad_json(self, rows: Sequence[Row]) -> None:
        """After the server refused a batch of JSON text: name the first stored value that does not
        parse, with its table and column, as reading it parsed would have (no-op if all parse)."""
        for at, slot in enumerate(self._slots):
            if not slot.is_json:
                continue
            for row in rows:
                value = row[at]
                try:
                    if isinstance(value, str):
                        json_from_text(value)
                except ValueError as exc:
                    raise InputError(f"stored value {value!r:.60} is not valid: {exc}",
                                     table=self.name, column=slot.name) from None

    def _canonical_converter(self, layout: TableLayout, json_text: bool) -> Callable[[Row], Row]:
        position = {name: i for i, name in enumerate(layout.columns)}
        for name in layout.columns:
            if name not in self._known and name not in self._dropped:
                self._dropped.add(name)
                self._warn(f"{self.name}.{name}: absent from the target table; values dropped")
        picks = [(position.get(s.name), s, unchanged if json_text and s.is_json else s.encode) for s in self._slots]
        if tuple(s.name for s in self._slots) == layout.columns and all(e is unchanged for _, _, e in picks):
            return tuple  # the common case between servers: nothing to convert

        def convert(row: Row) -> Row:
            return tuple(self._default(s) if i is None else (None if row[i] is None else encode(row[i]))
                         for i, s, encode in picks)
        return convert

    def build_batch(self, batch: RowBatch, source: str, canonical: Canonical | None = None) -> list[Row]:
        """Every row of ``batch``, converted column by column; any row the fast path cannot take
        as is (unknown keys, JSON nulls, bad values) sends the batch through :meth:`build`, which
        converts row by row and names the line and column of the first problem. ``canonical``: the
        same rows already coerced (the completeness check's build), so only encoding is left."""
        fast_paths: list[Callable[[], list[Row] | None]] = [lambda: self._columnwise(batch.rows)]
        if canonical:
            fast_paths.insert(0, lambda: self._from_canonical_columns(*canonical))
        counted = [loss.count for loss in self.losses]
        for fast_path in fast_paths:
            try:
                rows = fast_path()
            except (ValueError, TypeError, OverflowError):
                rows = None
            if rows is not None:
                return rows
            for loss, count in zip(self.losses, counted):  # each value is counted once, by the path that keeps it
                loss.count = count
        return [self.build(obj, batch.lines[i] if batch.lines else batch.first_line + i, source, batch.by_row)
                for i, obj in enumerate(batch.rows)]

    def _columnwise(self, objs: list[dict[str, Any]]) -> list[Row] | None:
        keys = set().union(*objs)
        if not keys <= self._known or JSON_NULL_KEY in keys:
            return None
        columns: list[Sequence[Any]] = []
        for slot in self._slots:
            if slot.name not in keys:
                columns.append([self._default(slot) for _ in objs])
                continue
            values: Sequence[Any]
            try:
                values = list(map(itemgetter(slot.name), objs))
            except KeyError:  # some rows lack the column: defaults are filled in row by row
                return None
            types = set(map(type, values))
            if slot.required and _NONE in types:
                return None
            if not types <= slot.unchanged | {_NONE}:
                values = convert_column(slot.convert, values)
            elif slot.fits is not None and not slot.fits(values):
                return None  # a value does not fit: the row-by-row path names its line and column
            columns.append(values)
        return list(zip(*columns))

    def _from_canonical_columns(self, layout: TableLayout, rows: Sequence[Row], json_text: bool = False) -> list[Row] | None:
        """``_columnwise`` for rows whose values are canonical already: the checks and encoders
        without the coercion. ``None`` where the row-by-row path must decide (and name the place)."""
        position = {name: i for i, name in enumerate(layout.columns)}
        if not self._known.issuperset(layout.columns):
            return None
        if not rows:
            return []
        by_column = list(zip(*rows))  # one transpose in C
        # Rows whose every value goes on as it is (the usual copy between servers) are sent as they
        # came, without building them again.
        changed = self.columns != layout.columns
        columns: list[Sequence[Any]] = []
        for slot in self._slots:
            at = position.get(slot.name)
            if at is None:
                columns.append([self._default(slot) for _ in rows])
                continue
            values: Sequence[Any] = by_column[at]
            types = set(map(type, values))
            if (slot.required and _NONE in types) or _JSON_NULL_TYPE in types:
                return None
            if slot.fits is not None and types <= slot.unchanged | {_NONE}:
                if not slot.fits(values):
                    return None
            elif slot.encode is not unchanged and not (json_text and slot.is_json):
                values = convert_column(slot.encode, values)
                changed = True
            columns.append(values)
        return list(zip(*columns)) if changed else list(rows)

    def build(self, obj: dict[str, Any], where: int, source: str, by_row: bool = False) -> Row:
        if not self._known.issuperset(obj.keys()):
            self._unknown_keys(obj, where, source, by_row)
        nulls = self._json_nulls(obj, where, source, by_row)
        out = []
        slot = None
        try:
            for slot in self._slots:
                value = obj.get(slot.name, _MISSING)
                if value is None:
                    if slot.is_json and slot.name in nulls:
                        out.append(slot.encode_own(JSON_NULL))
                    elif slot.required:
                        raise ValueError("null in a NOT NULL column")
                    else:
                        out.append(None)
                elif value is _MISSING:
                    out.append(self._default(slot))
                else:
                    out.append(slot.convert(value))
        except (ValueError, TypeError, OverflowError) as exc:
            raise InputError(str(exc), source=source, table=self.name, column=slot.name if slot else None,
                             **_position(where, by_row)) from None
        return tuple(out)

    def _json_nulls(self, obj: dict[str, Any], where: int, source: str, by_row: bool) -> frozenset[str]:
        """The row's ``"$json_null"`` marker: a list of exactly named JSON columns, or nothing.
        Anything else is refused rather than guessed at (a string would match by substring)."""
        marker = obj.get(JSON_NULL_KEY)
        if marker is None:
            return frozenset()
        if not isinstance(marker, list) or not all(isinstance(name, str) for name in marker):
            raise InputError(f"{JSON_NULL_KEY} must be a list of JSON column names, got {marker!r:.60}",
                             source=source, table=self.name, **_position(where, by_row))
        wrong = [name for name in marker if name not in self._json_columns]
        if wrong:
            raise InputError(f"{JSON_NULL_KEY} names {', '.join(repr(n)[:60] for n in wrong)}, not a JSON column "
                             "of this table", source=source, table=self.name, **_position(where, by_row))
        return frozenset(marker)

    def _default(self, slot: _Slot) -> Any:
        value = slot.default() if slot.default else None
        if value is None:
            if slot.required:
                raise ValueError("missing value for a NOT NULL column without a default")
            return None
        return slot.encode_own(value)

    def _unknown_keys(self, obj: dict[str, Any], where: int, source: str, by_row: bool) -> None:
        for key in obj.keys() - self._known:
            if not isinstance(key, str) or not _PLAIN_NAME.match(key):
                raise InputError(f"invalid column name {key!r:.80}", source=source, table=self.name,
                                 **_position(where, by_row))
            if key not in self._dropped:
                self._dropped.add(key)
                where_known = "the catalogue's" if key in self._catalogue else "an unknown"
                self._warn(f"{self.name}.{key}: {where_known} column, absent from the target table; values dropped")


def _slot(table: Table | None, live: LiveColumn, caps: Capabilities) -> _Slot:
    ctype = column_type(table, live)
    coerce = INPUT_COERCERS[ctype]
    encode = caps.encoders.get(ctype)
    known = table.column(live.name) if table else None
    default = (lambda column=known: default_for(column)) if known and known.default is not None else None
    required = not live.nullable and not (known and known.autoincrement)
    is_json = ctype is ColumnType.JSON
    own = encode or unchanged
    check = value_check(caps, live, ctype)
    loss = loss_check(live, ctype)
    if loss is not None:  # every value passes the counter: no column-wise shortcut
        steps = [s for s in (check, loss, encode) if s is not None]
        return _Slot(live.name, _chain(coerce, *steps), _chain(*steps), default, required, is_json,
                     loss=loss, encode_own=own)
    if check is not None:  # the column has limits (length, range, no NUL): every value is checked
        enc = encode or unchanged
        # Without an encoder, a batch column of already-canonical values is checked as a whole.
        kept, fits = (_UNCHANGED.get(ctype, frozenset()), column_check(caps, live, ctype)) if encode is None \
            else (frozenset(), None)
        return _Slot(live.name, _chain(coerce, check, enc), _chain(check, enc), default, required,
                     is_json, kept if fits else frozenset(), fits, encode_own=own)
    if encode is None:
        return _Slot(live.name, coerce, unchanged, default, required, is_json,
                     _UNCHANGED.get(ctype, frozenset()))
    return _Slot(live.name, _chain(coerce, encode), encode, default, required, is_json, encode_own=encode)


def _chain(*steps: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """One converter applying ``steps`` in order (coerce, check, count losses, encode). The
    identity is left out: a JSON column's chain is then its encoder itself, one call per value."""
    steps = tuple(step for step in steps if step is not unchanged) or (unchanged,)
    if len(steps) == 1:
        return steps[0]
    if len(steps) == 2:
        first, second = steps
        return lambda value: second(first(value))
    if len(steps) == 3:
        first, second, third = steps
        return lambda value: third(second(first(value)))

    def chained(value: Any) -> Any:
        for step in steps:
            value = step(value)
        return value
    return chained


def _position(where: int, by_row: bool) -> dict[str, Any]:
    return {"row": where} if by_row else {"line": where}


def check_table_name(name: Any, *, source: str | None = None, line: int | None = None) -> str:
    """The one rule for table names, shared by export, import, copy, verify and resume: only the
    catalogue's tables are ever read or written. Any other table in the database (an application's
    ``users``, our own ``memoria_stream_progress``) is out of reach, whatever a file or flag asks."""
    if not isinstance(name, str) or not _PLAIN_NAME.match(name):
        raise InputError(f"invalid table name {name!r:.80}", source=source, line=line)
    if get_table(name) is None:
        raise InputError("unknown table; only Memoria's tables are read or written",
                         source=source, line=line, table=name)
    return name


def check_table_names(names: Sequence[Any]) -> list[str]:
    """``check_table_name`` for the names of ``--table`` flags or a request, each once, in the given
    order; every name outside the catalogue is listed in the one error."""
    unknown = [n for n in names if isinstance(n, str) and _PLAIN_NAME.match(n) and get_table(n) is None]
    if unknown:
        raise InputError(f"unknown table: {', '.join(dict.fromkeys(unknown))}")
    return list(dict.fromkeys(check_table_name(n) for n in names))
