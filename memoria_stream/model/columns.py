"""Converting a whole column at once: the values a driver's decoder (or encoder) gives value by
value, with the per-value Python call left out wherever a C function (or nothing at all) does the
same work.

An export or a load spends most of its time in Python per value; a batch converted column by column
spends it in C. Each form here either returns exactly what ``[None if v is None else convert(v) for v
in values]`` returns, or raises ``ValueError``/``TypeError`` as that would (the caller then goes
value by value to name the one at fault).
"""

from __future__ import annotations

from datetime import datetime
from functools import partial
from operator import attrgetter
from typing import Any, Callable, Sequence

import orjson

from memoria_stream.model.types import ColumnType
from memoria_stream.model.values import INPUT_COERCERS, json_as_text, json_from_text, stored_timestamp, unchanged

Converter = Callable[[Any], Any]
_NONE = type(None)
_tzinfo = attrgetter("tzinfo")


def convert_column(convert: Converter, values: Sequence[Any]) -> Sequence[Any]:
    """``values`` (one column of a batch, SQL NULL as ``None``) through ``convert``."""
    if convert is unchanged:
        return values
    form = _FORMS.get(convert)
    return form(values) if form else _each(convert, values)


def _each(convert: Converter, values: Sequence[Any]) -> Sequence[Any]:
    if None in values:
        return [None if v is None else convert(v) for v in values]
    return list(map(convert, values))


def _present(values: Sequence[Any]) -> tuple[set[type], Sequence[Any]]:
    """The types of ``values`` and the values that are not NULL."""
    types = set(map(type, values))
    return types, ([v for v in values if v is not None] if _NONE in types else values)


def _refilled(values: Sequence[Any], decoded: list[Any]) -> Sequence[Any]:
    """``decoded`` (one per non-NULL value) put back in place between the NULLs of ``values``."""
    if len(decoded) == len(values):
        return decoded
    it = iter(decoded)
    return [None if v is None else next(it) for v in values]


def _floats(values: Sequence[Any]) -> Sequence[Any]:
    # ``float`` of a float is that float: a column the driver read as floats is already decoded.
    if set(map(type, values)) <= {float, _NONE}:
        return values
    return _each(float, values)


def _json(values: Sequence[Any]) -> Sequence[Any]:
    types, present = _present(values)
    if not types <= {str, _NONE}:
        return _each(json_from_text, values)
    parsed = list(map(orjson.loads, present))
    if None in parsed:  # a stored JSON null: json_from_text makes it JSON_NULL
        return _each(json_from_text, values)
    return _refilled(values, parsed)


def _json_texts(values: Sequence[Any]) -> Sequence[Any]:
    # Stored JSON passed on as text (to a server that checks it): text is already what it gives.
    if set(map(type, values)) <= {str, _NONE}:
        return values
    return _each(json_as_text, values)


def _timestamps(values: Sequence[Any], one: Converter = stored_timestamp) -> Sequence[Any]:
    """Timestamps stored or written as text (``one``: the value-by-value converter, which decides
    wherever C's parse alone may not)."""
    types, present = _present(values)
    if not types <= {str, _NONE}:
        return _each(one, values)
    try:
        parsed = list(map(datetime.fromisoformat, present))
    except ValueError:  # surrounding spaces, say: parse_timestamp decides, value by value
        return _each(one, values)
    if set(map(_tzinfo, parsed)) - {None}:  # an offset or Z: parse_timestamp converts it to UTC
        return _each(one, values)
    return _refilled(values, parsed)


_FILE_TIMESTAMP = INPUT_COERCERS[ColumnType.TIMESTAMP]  # a file's text: parse_timestamp, or refused

_FORMS: dict[Converter, Callable[[Sequence[Any]], Sequence[Any]]] = {
    float: _floats, json_from_text: _json, json_as_text: _json_texts,
    stored_timestamp: _timestamps, _FILE_TIMESTAMP: partial(_timestamps, one=_FILE_TIMESTAMP),
}
