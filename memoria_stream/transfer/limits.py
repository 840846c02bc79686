"""What a target column can hold, checked before a row is sent, so that a value that does not fit
is reported with its file, line, table and column instead of as a server error about "row 3".

The limits come from the live column's declared type (``varchar(255)``, ``bigint``, ``int unsigned``)
and from the backend's capabilities record (whether text may hold NUL, whether lengths are enforced).

Some columns take every value but keep less of it (Memoria's MySQL DDL: ``DATETIME`` drops
microseconds, ``FLOAT`` keeps single precision, ``TEXT`` stops at 64 KiB). Those are not errors
value by value: :func:`loss_check` counts every value such a column would change, so a load can be
refused (or, when allowed, reported) per column once the whole input has been seen.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, Sequence

from memoria_stream.drivers.base import Capabilities, LiveColumn
from memoria_stream.model.types import ColumnType
from memoria_stream.model.values import all_finite, finite_float

Check = Callable[[Any], Any]
ColumnCheck = Callable[[Sequence[Any]], bool]

# Integer widths by the words of declared types, most specific first ("bigint" contains "int").
_INTEGER_BITS = (("bigint", 64), ("int8", 64), ("mediumint", 24), ("smallint", 16), ("int2", 16),
                 ("tinyint", 8), ("bigserial", 64), ("serial", 32), ("int", 32))
_CHAR_LENGTH = re.compile(r"char[a-z ]*\((\d+)\)", re.IGNORECASE)
_UTF8_MAX = 4  # bytes per character, at most


def _text_limits(caps: Capabilities, live: LiveColumn) -> tuple[int | None, int | None, bool] | None:
    """(characters, bytes, NUL allowed) for a text column; ``None`` when it takes any text."""
    length = declared_length(live.declared_type) if caps.enforces_text_length else None
    # A byte bound the driver reports is a loss (counted by ``loss_check``), not an error.
    max_bytes = None if live.max_bytes else caps.text_byte_limits.get(live.declared_type.lower())
    if length is None and max_bytes is None and caps.text_allows_nul:
        return None
    return length, max_bytes, caps.text_allows_nul


def value_check(caps: Capabilities, live: LiveColumn, ctype: ColumnType) -> Check | None:
    """A function that returns a canonical value unchanged or raises ``ValueError`` saying why the
    column cannot hold it; ``None`` when the column takes every value of its type."""
    if ctype is ColumnType.TEXT:
        limits = _text_limits(caps, live)
        return partial(_check_text, *limits) if limits else None
    if ctype is ColumnType.INTEGER:
        low, high = integer_bounds(caps, live.declared_type)
        return partial(_check_integer, low, high, live.declared_type or "INTEGER")
    if ctype is ColumnType.FLOAT:
        return finite_float
    return None


def column_check(caps: Capabilities, live: LiveColumn, ctype: ColumnType) -> ColumnCheck | None:
    """The same limits as :func:`value_check`, over a whole column of a batch at once: ``True``
    when every value fits. It never explains a failure — the caller then checks value by value, so
    the message (and the line it names) stays the one :func:`value_check` gives."""
    if ctype is ColumnType.TEXT:
        limits = _text_limits(caps, live)
        return partial(_text_column_fits, *limits) if limits else None
    if ctype is ColumnType.INTEGER:
        return partial(_integer_column_fits, *integer_bounds(caps, live.declared_type))
    if ctype is ColumnType.FLOAT:
        return all_finite
    return None


def declared_length(declared: str) -> int | None:
    """``n`` of ``varchar(n)`` / ``character varying(n)`` / ``char(n)``; ``None`` when unbounded."""
    match = _CHAR_LENGTH.search(declared)
    return int(match.group(1)) if match else None


def integer_bounds(caps: Capabilities, declared: str) -> tuple[int, int]:
    """The range of an integer column (64-bit where the backend does not size integers)."""
    lowered = declared.lower()
    bits = 64
    if caps.sized_integers:
        bits = next((b for word, b in _INTEGER_BITS if word in lowered), 64)
    if "unsigned" in lowered:
        return 0, (1 << bits) - 1
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def _check_text(length: int | None, max_bytes: int | None, nul_ok: bool, value: Any) -> Any:
    if not isinstance(value, str):
        return value
    if length is not None and len(value) > length:
        raise ValueError(f"text of {len(value)} characters does not fit the column's {length}")
    if max_bytes is not None and len(value) * _UTF8_MAX > max_bytes and len(value.encode()) > max_bytes:
        raise ValueError(f"text of {len(value.encode())} bytes does not fit the column's {max_bytes}")
    if not nul_ok and "\x00" in value:
        raise ValueError(f"text holds a NUL character (at offset {value.index(chr(0))}), "
                         "which this database cannot store")
    return value


def _check_integer(low: int, high: int, declared: str, value: Any) -> Any:
    if isinstance(value, int) and not low <= value <= high:
        raise ValueError(f"integer {value} is out of range for {declared} ({low}..{high})")
    return value


def _text_column_fits(length: int | None, max_bytes: int | None, nul_ok: bool, values: Sequence[Any]) -> bool:
    """For a column of ``str`` (and ``None``): one pass in C per limit instead of a call per value."""
    texts = [v for v in values if v is not None] if None in values else values
    if not texts:
        return True
    longest = max(map(len, texts))
    if length is not None and longest > length:
        return False
    if max_bytes is not None and longest * _UTF8_MAX > max_bytes:
        if any(len(v.encode()) > max_bytes for v in texts if len(v) * _UTF8_MAX > max_bytes):
            return False
    return nul_ok or "\x00" not in "".join(texts)


def _integer_column_fits(low: int, high: int, values: Sequence[Any]) -> bool:
    """For a column of ``int`` (and ``None``)."""
    numbers = [v for v in values if v is not None] if None in values else values
    return not numbers or (low <= min(numbers) and max(numbers) <= high)


# --- values a column takes but changes ------------------------------------------------------

@dataclass
class Loss:
    """The values of one column that the target would store changed, counted as they pass.

    ``changes`` tells whether a value would change; ``fit`` returns what is sent instead (the value
    itself where the server rounds; text cut at the column's byte limit, which strict MySQL would
    otherwise refuse). Counting continues over the whole input so the report gives every column's
    full count."""

    column: str
    target_type: str
    what: str  # how a value changes, e.g. "fractional seconds cut"
    changes: Callable[[Any], bool]
    fit: Callable[[Any], Any]
    count: int = 0

    def __call__(self, value: Any) -> Any:
        if value is not None and self.changes(value):
            self.count += 1
            return self.fit(value)
        return value

    def describe(self) -> str:
        return f"{self.count} value{'s' if self.count != 1 else ''} ({self.what})"


def loss_check(live: LiveColumn, ctype: ColumnType) -> Loss | None:
    """A counter of the values ``live`` cannot hold exactly; ``None`` when it keeps every value."""
    target = live.declared_type or ctype.value
    if ctype is ColumnType.TIMESTAMP and live.fraction_digits < 6:
        step = 10 ** (6 - live.fraction_digits)
        digits = f"{live.fraction_digits} digits" if live.fraction_digits else "none"
        return Loss(live.name, target, f"fractional seconds beyond the column's {digits}",
                    lambda value: getattr(value, "microsecond", 0) % step != 0, _identity)
    if ctype is ColumnType.FLOAT and live.single_precision:
        return Loss(live.name, target, "double-precision digits a single-precision float drops",
                    _changes_in_single_precision, _identity)
    if ctype is ColumnType.TEXT and live.max_bytes:
        limit = live.max_bytes
        return Loss(live.name, target, f"text longer than the column's {limit} bytes, cut",
                    partial(_longer_than, limit), partial(_cut_to_bytes, limit))
    return None


def _identity(value: Any) -> Any:
    return value


def _changes_in_single_precision(value: Any) -> bool:
    if not isinstance(value, float) or value != value:  # NaN compares unequal to itself
        return False
    try:
        return bool(struct.unpack("f", struct.pack("f", value))[0] != value)
    except OverflowError:  # beyond single precision's range
        return True


def _longer_than(limit: int, value: Any) -> bool:
    return isinstance(value, str) and len(value) * _UTF8_MAX > limit and len(value.encode()) > limit


def _cut_to_bytes(limit: int, value: str) -> str:
    """The longest prefix of ``value`` within ``limit`` UTF-8 bytes (never half a character)."""
    return value.encode()[:limit].decode(errors="ignore")
