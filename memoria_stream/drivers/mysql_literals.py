"""Multi-row INSERT statements for MySQL/MariaDB, escaped one column at a time.

aiomysql's ``executemany`` escapes every value through a chain of Python calls; profiling an import
put that at more than half of the client's CPU. Here a column of one type is escaped by one
comprehension, and a text without any character that needs escaping (most of them) is taken as is:
a regular-expression scan in C is cheaper than ``str.translate`` over the whole text. Every literal
is the exact text pymysql would produce (its ``escape_string`` still escapes what needs it), and
any column of another type goes through the connection's own ``escape``, value by value.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Callable, Iterator, Sequence

from pymysql.constants import SERVER_STATUS

from memoria_stream.model.types import Row

# The characters pymysql's escape table changes (NUL, LF, CR, Ctrl-Z, quotes, backslash).
_NEEDS_ESCAPE = re.compile("[\x00\n\r\x1a'\"\\\\]")
_NONE = type(None)


def fast_escaping(server_status: int) -> bool:
    """Backslash escapes are what the fast path writes; with NO_BACKSLASH_ESCAPES it is not used."""
    return not server_status & SERVER_STATUS.SERVER_STATUS_NO_BACKSLASH_ESCAPES


def column_literals(values: Sequence[Any], escape: Callable[[Any], str]) -> list[str]:
    """SQL literals of one column's values (``escape`` is the connection's, for other types)."""
    types = set(map(type, values))
    types.discard(_NONE)
    if types == {str}:
        search = _NEEDS_ESCAPE.search
        return ["NULL" if v is None else "'" + (_escape_text(v) if search(v) else v) + "'" for v in values]
    if types == {int}:  # pymysql's escape_int is str()
        return ["NULL" if v is None else str(v) for v in values]
    if types == {bool}:  # escape_bool: str(int(value))
        return ["NULL" if v is None else "1" if v else "0" for v in values]
    if types == {datetime}:  # escape_datetime's text is str() of a naive datetime ("…ss" or "…ss.ffffff")
        return ["NULL" if v is None else "'" + str(v) + "'" if v.tzinfo is None else escape(v) for v in values]
    if types == {float}:
        return ["NULL" if v is None else _float(v, escape) for v in values]
    return [escape(v) for v in values]


def _escape_text(value: str) -> str:
    """pymysql's ``escape_string`` (a ``str.translate``), as seven scans in C: several times faster on
    long non-ASCII text. Backslashes go first; no later step adds a character an earlier one replaces."""
    return (value.replace("\\", "\\\\").replace("\x00", "\\0").replace("\n", "\\n").replace("\r", "\\r")
            .replace("\x1a", "\\Z").replace('"', '\\"').replace("'", "\\'"))


def _float(value: float, escape: Callable[[Any], str]) -> str:
    text = repr(value)  # escape_float: repr, with "e0" added; inf and nan are refused by escape()
    if text in ("inf", "-inf", "nan"):
        return escape(value)
    return text if "e" in text else text + "e0"


def insert_statements(prefix: str, rows: Sequence[Row], escape: Callable[[Any], str], encoding: str,
                      max_length: int) -> Iterator[bytes]:
    """``prefix`` + ``(…),(…)`` statements of at most ``max_length`` bytes (a single row may exceed
    it, as with aiomysql), rows in order."""
    columns = [column_literals(column, escape) for column in zip(*rows)]
    values = ["(" + ",".join(row) + ")" for row in zip(*columns)]
    del columns  # a batch's text is held at most twice at a time (str, then bytes)
    head = prefix.encode(encoding)
    whole = (prefix + ",".join(values)).encode(encoding, "surrogateescape")
    if len(whole) <= max_length:
        del values
        yield whole
        return
    del whole
    sql = bytearray(head)
    for i, text in enumerate(values):
        value = text.encode(encoding, "surrogateescape")
        if len(sql) > len(head) and len(sql) + len(value) + 1 > max_length:
            yield bytes(sql)
            sql = bytearray(head)
        elif len(sql) > len(head):
            sql += b","
        sql += value
    yield bytes(sql)
