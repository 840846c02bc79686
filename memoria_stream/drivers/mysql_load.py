"""Batches written with ``LOAD DATA LOCAL INFILE``, answered only with our own stream.

Why: the server's INSERT path costs about twice its LOAD DATA path, and building INSERT text costs
the client more than the tab-separated text built here.

Security: with the LOCAL_FILES capability a MySQL client normally opens whatever file name the
server's LOCAL INFILE request (packet 0xFB) carries, so a server, or anyone posing as it, could read
any file the client can read. This connection never opens a file: it answers such a request only
while one of our own writes has armed it, with that write's bytes, whatever name the server sends;
at any other moment (a user's ``LOAD DATA LOCAL INFILE '/etc/passwd'``, a hostile server) it sends an
empty file and raises. The arming is taken by the first request, so it cannot serve two.

The text: one line per row, fields separated by tabs, ``\\N`` for NULL, backslash, tab, newline, NUL
and CR escaped with a backslash; floats as ``repr`` (which reads back as the same double), bytes as
hex through ``UNHEX``. Batches holding other kinds of value are left to the INSERT path.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Iterable, Iterator, Sequence

import aiomysql
from aiomysql.connection import MySQLResult
from pymysql.constants import ER
from pymysql.err import OperationalError

from memoria_stream.model.types import Row

# The name in our statement; the server sends it back and it is never opened.
STREAM_NAME = "memoria-stream"
# Bytes per packet sent; far below any max_allowed_packet a server accepts.
_CHUNK = 64 * 1024
# The server refuses LOAD DATA LOCAL: ER_NOT_ALLOWED_COMMAND (1148, MySQL 5.x and MariaDB),
# ER_CLIENT_LOCAL_FILES_DISABLED (3948, MySQL 8), ER_LOAD_INFILE_CAPABILITY_DISABLED (4166, MariaDB).
REFUSED_CODES = frozenset({ER.NOT_ALLOWED_COMMAND, 3948, 4166})
# Client error "LOAD DATA LOCAL INFILE file request rejected" (CR_LOAD_DATA_LOCAL_INFILE_REJECTED).
_REJECTED = 2068

_NEEDS_ESCAPE = re.compile(b"[\\\\\t\n\r\x00]")
_NONE = type(None)
_CARRIED = {str, bool, int, float, datetime, bytes}


class OwnStreamOnly:
    """Mixin for ``aiomysql.Connection``: LOCAL INFILE requests are answered from ``load_local`` only.

    aiomysql reads every statement's result through ``_read_query_result``, which makes a
    ``MySQLResult``; here it makes an ``_OwnStreamResult`` instead. (``show_warnings`` still uses
    aiomysql's own class, which refuses any request because ``local_infile`` stays False.)"""

    _armed: Iterable[bytes] | None = None
    _result: Any  # aiomysql's: the last statement's result

    async def load_local(self, sql: str, chunks: Iterable[bytes]) -> tuple[int, int]:
        """Run our ``LOAD DATA LOCAL INFILE`` statement, serving ``chunks`` as the file; returns the
        rows the server stored and its warning count."""
        self._armed = chunks
        try:
            await self.query(sql)  # type: ignore[attr-defined]
        finally:
            self._armed = None  # not served (an error before the request): never served later
        result = self._result
        return int(result.affected_rows or 0), int(result.warning_count or 0)

    async def _read_query_result(self, unbuffered: bool = False) -> None:
        # aiomysql's method of the same name, with our result class.
        self._result = None
        result = _OwnStreamResult(self)
        if unbuffered:
            try:
                await result.init_unbuffered_query()
            except BaseException:
                result.unbuffered_active = False
                result.connection = None
                raise
        else:
            await result.read()
        self._result = result
        self._affected_rows = result.affected_rows
        if result.server_status is not None:
            self.server_status = result.server_status


class _OwnStreamResult(MySQLResult):  # type: ignore[misc]
    async def _read_load_local_packet(self, first_packet: Any) -> None:
        conn = self.connection
        chunks, conn._armed = conn._armed, None  # one request, one stream
        failure = None
        try:
            for chunk in chunks or ():  # built piece by piece: the server reads one while we build the next
                view = memoryview(chunk)
                for start in range(0, len(view), _CHUNK):
                    conn.write_packet(view[start:start + _CHUNK])
        except Exception as exc:  # the stream still ends, and its answer is read, to stay in step
            failure = exc
        conn.write_packet(b"")  # end of file (or, refused, an empty one: the server needs a packet)
        answer = await conn._read_packet()  # an error packet raises here
        if failure is not None:
            raise failure
        if chunks is None:
            raise OperationalError(_REJECTED, "LOAD DATA LOCAL INFILE refused: this client does not send "
                                   "local files (local infile is off except for its own writes)")
        if not answer.is_ok_packet():
            raise OperationalError(2014, "Commands Out of Sync")
        self._read_ok_packet(answer)


class Connection(OwnStreamOnly, aiomysql.Connection):  # type: ignore[misc]
    """An aiomysql connection with LOAD DATA LOCAL served from our own writes only."""


def load_statement(quote: Any, table: str, columns: Sequence[str], hex_columns: set[int]) -> str:
    """The LOAD DATA statement for ``columns`` (those in ``hex_columns`` arrive as hex text)."""
    targets = [f"@h{i}" if i in hex_columns else quote(c) for i, c in enumerate(columns)]
    unhex = [f"{quote(columns[i])} = UNHEX(@h{i})" for i in sorted(hex_columns)]
    return (f"LOAD DATA LOCAL INFILE '{STREAM_NAME}' INTO TABLE {quote(table)} CHARACTER SET utf8mb4 "
            r"FIELDS TERMINATED BY '\t' ENCLOSED BY '' ESCAPED BY '\\' LINES STARTING BY '' TERMINATED BY '\n' "
            f"({', '.join(targets)})" + (f" SET {', '.join(unhex)}" if unhex else ""))


def hex_columns_of(rows: Sequence[Row]) -> set[int] | None:
    """The columns of ``rows`` sent as hex (bytes), or ``None`` when a column holds a kind of
    value, or a mix of kinds, that the text does not carry (the batch then goes through INSERT)."""
    hex_columns = set()
    for i, values in enumerate(zip(*rows)):
        types = set(map(type, values))
        types.discard(_NONE)
        if len(types) > 1 or not types <= _CARRIED:
            return None
        if types == {bytes}:
            hex_columns.add(i)
    return hex_columns


def load_lines(rows: Sequence[Row]) -> list[bytes]:
    """Each row as one line of LOAD DATA text, without its newline: rows encoded ahead of their
    write (``MySQLConnection.line_writer``), for a table with no bytes column. A column may mix the
    kinds of value the text carries (each is written as alone); any other kind raises TypeError."""
    columns = []
    for values in zip(*rows):
        fields = column_fields(values)
        if fields is None or isinstance(fields, _Hex):
            fields = [_field(value) for value in values]
        columns.append(fields)
    return list(map(b"\t".join, zip(*columns)))


def _field(value: Any) -> bytes:
    kind = type(value)
    if value is None or (kind in _CARRIED and kind is not bytes):
        return column_fields([value])[0]  # type: ignore[index]
    raise TypeError(f"a {kind.__name__} value has no LOAD DATA text in a column without bytes")


def line_pieces(lines: Sequence[bytes], piece_rows: int = 256) -> Iterator[bytes]:
    """The text of ``load_lines``' lines, a few hundred at a time."""
    for start in range(0, len(lines), piece_rows):
        yield b"\n".join(lines[start:start + piece_rows]) + b"\n"


def rows_of_lines(lines: Sequence[bytes]) -> list[tuple[str | None, ...]]:
    """The rows ``load_lines`` wrote, each value as the text of its field (None for NULL): what
    INSERT is given when a batch of lines must be written, or replayed, that way. The server turns
    the text into the column's type as LOAD DATA would have."""
    return [tuple(map(_value, line.split(b"\t"))) for line in lines]


def _value(field: bytes) -> str | None:
    if field == b"\\N":
        return None
    if b"\\" in field:
        field = _ESCAPED.sub(_unescape, field)
    return field.decode("utf-8", "surrogateescape")


_ESCAPED = re.compile(b"\\\\(.)", re.DOTALL)
_UNESCAPED = {b"\\": b"\\", b"t": b"\t", b"n": b"\n", b"r": b"\r", b"0": b"\x00"}


def _unescape(match: re.Match[bytes]) -> bytes:
    return _UNESCAPED[match.group(1)]


def load_pieces(rows: Sequence[Row], piece_rows: int = 256) -> Iterator[bytes]:
    """The text of rows ``hex_columns_of`` accepted, a few hundred rows at a time."""
    for start in range(0, len(rows), piece_rows):
        text = load_text(rows[start:start + piece_rows])
        if text is None:
            raise ValueError("a batch hex_columns_of() did not accept")
        yield text[0]


def load_text(rows: Sequence[Row]) -> tuple[bytes, set[int]] | None:
    """The rows as LOAD DATA text (UTF-8) and the columns sent as hex; ``None`` when some column
    holds a kind of value this text does not carry (the batch then goes through INSERT)."""
    columns: list[list[bytes]] = []
    hex_columns: set[int] = set()
    for i, values in enumerate(zip(*rows)):
        fields = column_fields(values)
        if fields is None:
            return None
        if isinstance(fields, _Hex):
            hex_columns.add(i)
        columns.append(fields)
    lines = list(map(b"\t".join, zip(*columns)))
    del columns
    lines.append(b"")  # the last line ends with a newline too
    return b"\n".join(lines), hex_columns


class _Hex(list):  # type: ignore[type-arg]
    """Fields of a bytes column: hex text, turned back into bytes by the statement's UNHEX."""


def column_fields(values: Sequence[Any]) -> list[bytes] | None:
    """LOAD DATA fields of one column's values, or ``None`` if a value's kind is not handled here.
    Each field reads back as the value the INSERT path's literal stores."""
    types = set(map(type, values))
    types.discard(_NONE)
    if types == {str}:
        return _text_fields(values)
    if types == {bool}:
        return _ascii(["\\N" if v is None else "1" if v else "0" for v in values])
    if types == {int}:
        return _ascii(["\\N" if v is None else str(v) for v in values])
    if types == {float}:  # repr round-trips; inf and nan are stored as 0 with a warning: the guard sees it
        return _ascii(["\\N" if v is None else repr(v) for v in values])
    if types == {datetime}:  # the INSERT path's literal: the wall-clock fields, any tzinfo ignored
        return _ascii(["\\N" if v is None else str(v) if v.tzinfo is None else str(v.replace(tzinfo=None))
                       for v in values])
    if types == {bytes}:
        return _Hex(_ascii(["\\N" if v is None else v.hex() for v in values]))
    if not types:
        return [b"\\N"] * len(values)
    return None


def _text_fields(values: Sequence[str | None]) -> list[bytes]:
    """Escaped UTF-8 texts. The column is joined with a separator no text holds, encoded and escaped
    by a few byte scans in C, then split again: several times cheaper than a scan per value (and
    than escaping wide non-ASCII strings). Texts that hold the separator are escaped one by one."""
    joined = _SEPARATOR.join(["" if v is None else v for v in values])
    if joined.count(_SEPARATOR) == len(values) - 1:
        fields = _escape(joined.encode("utf-8", "surrogateescape")).split(_SEPARATOR.encode())
    else:
        fields = [_escape(v.encode("utf-8", "surrogateescape")) if v else b"" for v in values]
    if None in values:
        fields = [b"\\N" if v is None else field for v, field in zip(values, fields)]
    return fields


def _ascii(fields: list[str]) -> list[bytes]:
    """Fields that need no escaping (digits, dates, hex), encoded in one go."""
    return _SEPARATOR.join(fields).encode("ascii").split(_SEPARATOR.encode())


# ASCII "unit separator": kept out of the escaped characters, and texts rarely hold it (those that
# do are found by the count and escaped one by one).
_SEPARATOR = "\x1f"


def _escape(text: bytes) -> bytes:
    """Backslash first, so that no later step's backslash is doubled."""
    if not _NEEDS_ESCAPE.search(text):
        return text
    return (text.replace(b"\\", b"\\\\").replace(b"\t", b"\\t").replace(b"\n", b"\\n")
            .replace(b"\r", b"\\r").replace(b"\x00", b"\\0"))
