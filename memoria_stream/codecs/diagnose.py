"""Naming the table and column of a line that does not parse, on the failure path only.

A line that orjson rejects (invalid UTF-8, nesting deeper than orjson allows, cut short) has no
parsed table or column to report; these helpers recover them from the raw bytes, best effort.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

_TABLE = re.compile(r'"table"\s*:\s*"([A-Za-z_][A-Za-z0-9_]{0,63})"')
_KEY = re.compile(r'"([^"\\]{1,64})"\s*:')


def describe_failure(line: bytes, exc: orjson.JSONDecodeError) -> tuple[str, str | None, str | None]:
    """``(reason, table, column)`` for a line orjson could not parse."""
    text = line.decode("utf-8", "replace")
    found = _TABLE.search(text)
    table = found.group(1) if found else None
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as bad:
        return f"invalid UTF-8 at byte {bad.start} of the line", table, _column_with_replacement(text)
    reason = str(exc).split(": line ", 1)[0]
    keys = _KEY.findall(text, 0, max(exc.pos, 0))
    columns = keys[keys.index("data") + 1:] if "data" in keys else [k for k in keys if k != "table"]
    return f"malformed JSON: {reason} (column {exc.colno})", table, columns[-1] if columns else None


def table_named(head: bytes) -> str | None:
    """The table a row line names in its first bytes, if it names a plain one."""
    found = _TABLE.search(head.decode("utf-8", "replace"))
    return found.group(1) if found else None


def _column_with_replacement(text: str) -> str | None:
    try:
        obj: Any = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    data = obj.get("data") if isinstance(obj, dict) else None
    if not isinstance(data, dict):
        return None
    return next((str(k) for k, v in data.items() if "\ufffd" in orjson.dumps(v).decode()), None)
