"""Value rules in one place: canonical Python values, strict coercion of file input, and the
conversions between canonical values and what each driver library reads and writes.

Canonical values: ``str``, ``int``, ``float``, ``bool``, naive-UTC ``datetime``, JSON as parsed
Python objects with ``JSON_NULL`` for a stored JSON ``null``; SQL NULL is always ``None``.
"""

from __future__ import annotations

import base64
import math
from datetime import datetime, timezone
from typing import Any, Callable, Sequence

import orjson

from memoria_stream.errors import InputError
from memoria_stream.model.types import JSON_NULL, ColumnType

Coercer = Callable[[Any], Any]

_TRUE = frozenset({"true", "t", "yes", "y", "1", "on"})
_FALSE = frozenset({"false", "f", "no", "n", "0", "off"})


# --- timestamps -------------------------------------------------------------------------------

def parse_timestamp(text: str) -> datetime:
    """ISO text with ``T`` or a space, optional fraction and ``Z``/offset, as a naive-UTC datetime."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(timezone.utc).replace(tzinfo=None)
    return parsed


def stored_timestamp(value: Any) -> Any:
    """A timestamp as a database stored it: text is parsed, a value its driver parsed stays."""
    return parse_timestamp(value) if isinstance(value, str) else value


def to_naive_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value
    return value.astimezone(timezone.utc).replace(tzinfo=None)


def sqlite_timestamp(value: datetime) -> str:
    """The text SQLAlchemy stores in a SQLite DATETIME column (always six fraction digits)."""
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")


def utc_now_iso() -> str:
    """Memoria's ``exported_at``: naive-UTC ISO with microseconds (dropped when 0) and a literal ``Z``."""
    return datetime.now(timezone.utc).replace(tzinfo=None).isoformat() + "Z"


# --- JSON columns -----------------------------------------------------------------------------

def json_from_text(text: Any) -> Any:
    """Parse stored JSON text (str/bytes; SQLite may also hand back an int or float) into a value."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return text
    value = orjson.loads(text)
    return JSON_NULL if value is None else value


def json_to_text(value: Any) -> str:
    if value is JSON_NULL:
        return "null"
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def json_as_text(value: Any) -> str:
    """Stored JSON as text without parsing it (for a server that checks JSON itself): text stays
    as stored; a number SQLite kept as one becomes the text ``json_to_text`` would give it."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode()
    return json_to_text(value)


def json_for_output(value: Any) -> Any:
    """What a file gets for a JSON value (JSON_NULL becomes null; the row marker records it)."""
    return None if value is JSON_NULL else value


# --- strict coercion of values read from a file -------------------------------------------------

def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    raise ValueError(f"expected text, got {_describe(value)}")


def _integer(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise ValueError(f"expected an integer, got {_describe(value)}")


def _float(value: Any) -> float:
    number: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            pass
    if number is None:
        raise ValueError(f"expected a number, got {_describe(value)}")
    if not math.isfinite(number):
        raise ValueError(f"expected a finite number, got {_describe(value)}")
    return number


def finite_float(value: Any) -> Any:
    """A canonical value unchanged, unless it is NaN or an infinity: JSON cannot hold those (they
    would be exported as null), so a database holding one could not be exported and re-imported."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {value!r}")
    return value


def all_finite(values: Sequence[Any]) -> bool:
    """For a column of ``float`` (and ``None``): NaN and infinities survive a sum, so one sum in C
    finds them. A sum that overflows says no too: the caller then checks value by value."""
    numbers = [v for v in values if v is not None] if None in values else values
    return math.isfinite(sum(numbers))


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    raise ValueError(f"expected a boolean, got {_describe(value)}")


def _timestamp(value: Any) -> datetime:
    if isinstance(value, str):
        try:
            return parse_timestamp(value)
        except ValueError:
            pass
    raise ValueError(f"expected an ISO datetime, got {_describe(value)}")


def unchanged(value: Any) -> Any:
    """The identity: what a JSON column's file value coerces with (any JSON value is one), and the
    encoder of a type a driver takes as it is."""
    return value


def _bytes(value: Any) -> bytes:
    if isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except ValueError:
            pass
    raise ValueError(f"expected base64 text, got {_describe(value)}")


INPUT_COERCERS: dict[ColumnType, Coercer] = {
    ColumnType.TEXT: _text,
    ColumnType.INTEGER: _integer,
    ColumnType.FLOAT: _float,
    ColumnType.BOOLEAN: _boolean,
    ColumnType.TIMESTAMP: _timestamp,
    ColumnType.JSON: unchanged,
    ColumnType.BYTES: _bytes,
}


def parse_bool_flag(value: Any, *, name: str) -> bool:
    """Strict booleans for request flags: ``"false"`` is false, anything unclear is an error."""
    try:
        return _boolean(value)
    except ValueError:
        raise InputError(f"{name} must be true or false, got {_describe(value)}") from None


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    text = orjson.dumps(value, default=str).decode() if not isinstance(value, float) or math.isfinite(value) else repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{type(value).__name__} {text}"
