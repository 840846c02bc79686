"""MySQL and MariaDB through aiomysql: unbuffered reads; writes by LOAD DATA LOCAL of our own stream
(``mysql_load.py``), or multi-row INSERTs under max_allowed_packet where the server refuses it."""

from __future__ import annotations

import contextlib
from dataclasses import replace
import logging
import ssl as _ssl
from typing import Any, AsyncIterator, Iterator, Mapping, Sequence

import aiomysql
import pymysql
from pymysql.constants import CLIENT, SERVER_STATUS

from memoria_stream.errors import ConfigurationError, DatabaseError, IntegrityFailure, InternalError
from memoria_stream.model.types import ColumnType as T, Row
from memoria_stream.drivers.urls import DatabaseURL
from memoria_stream.model.values import json_from_text, json_to_text
from memoria_stream.drivers.base import PROBE_ROWS, Capabilities, KeyScan, LiveColumn, StorageChanges, rows_per_batch, shielded, select_sql
from memoria_stream.drivers.mysql_literals import fast_escaping, insert_statements
from memoria_stream.drivers.mysql_load import (
    REFUSED_CODES, Connection as _LoadingConnection, hex_columns_of, line_pieces, load_lines, load_pieces,
    load_statement, rows_of_lines)

log = logging.getLogger(__name__)
_REFUSING: set[str] = set()  # database URLs already reported as refusing LOAD DATA LOCAL

CAPABILITIES = Capabilities(
    dialect="mysql",
    quote_char="`",
    placeholder="%s",
    bulk_copy=False,
    max_bind_params=65535,
    transactional_ddl=False,
    clustered_by_key=True,
    add_indexes_together=True,
    # DATETIME(6) and DOUBLE so that microseconds and double precision survive (Memoria's DDL loses both);
    # LONGTEXT because Memoria's TEXT stops at 64 KiB.
    ddl_types={
        T.TEXT: "LONGTEXT", T.INTEGER: "INTEGER", T.FLOAT: "DOUBLE", T.BOOLEAN: "BOOL",
        T.TIMESTAMP: "DATETIME(6)", T.JSON: "JSON", T.BYTES: "LONGBLOB",
    },
    varchar="VARCHAR({n})",
    autoincrement_pk="INTEGER NOT NULL AUTO_INCREMENT",
    table_suffix=" ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
    text_byte_limits={"tinytext": 255, "text": 65535, "mediumtext": 16777215},
    modify_column="MODIFY {column} {definition}",
    set_not_null="MODIFY {column} {definition} NOT NULL",
    encoders={T.JSON: json_to_text},
    decoders={T.JSON: json_from_text, T.BOOLEAN: bool, T.FLOAT: float},
)

# MariaDB's cost model expects index probes to hit its cache, so it checks a large child table by
# probing the parent's key once per row: 6.9 s for 100,000 short-term memories against 201,900 chats
# inside a load, against 1.5 s when it reads the parent's keys once into a hash table. That table
# may take up to this much of the server's memory for the one statement, and spills to disk past it.
_KEY_SCAN_HEAP_BYTES = 256 * 1024 * 1024
MARIADB_CAPABILITIES = replace(CAPABILITIES, key_scan=KeyScan(
    statement_prefix=(f"SET STATEMENT optimizer_switch = 'in_to_exists=off', max_heap_table_size = "
                      f"{_KEY_SCAN_HEAP_BYTES}, tmp_table_size = {_KEY_SCAN_HEAP_BYTES} FOR "),
    table_hint=" FORCE INDEX (PRIMARY)",
    row_estimates_sql=("SELECT table_name, table_rows FROM information_schema.tables "
                       "WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE'"),
))

_TYPES = {
    "varchar": T.TEXT, "char": T.TEXT, "text": T.TEXT, "tinytext": T.TEXT, "mediumtext": T.TEXT,
    "longtext": T.TEXT, "enum": T.TEXT, "int": T.INTEGER, "bigint": T.INTEGER, "smallint": T.INTEGER,
    "mediumint": T.INTEGER, "tinyint": T.INTEGER, "float": T.FLOAT, "double": T.FLOAT, "decimal": T.FLOAT,
    "datetime": T.TIMESTAMP, "timestamp": T.TIMESTAMP, "json": T.JSON, "blob": T.BYTES,
    "longblob": T.BYTES, "varbinary": T.BYTES, "binary": T.BYTES,
}

# The statement size aiomysql's executemany packs rows into; far below the 16 MiB max_allowed_packet default.
_MAX_STATEMENT = 4 * 1024 * 1024


# TLS modes as MySQL's client names them (``--ssl-mode``), with the spellings libpq and URLs use.
_TLS_MODES = {
    "disabled": "disabled", "disable": "disabled", "false": "disabled", "0": "disabled", "off": "disabled",
    "preferred": "preferred", "prefer": "preferred",
    "required": "required", "require": "required", "true": "required", "1": "required", "on": "required",
    "verify_ca": "verify_ca", "verify-ca": "verify_ca",
    "verify_identity": "verify_identity", "verify-identity": "verify_identity", "verify-full": "verify_identity",
}
_MODE_PARAMETERS = ("ssl-mode", "ssl_mode", "sslmode", "ssl")
_CA_PARAMETERS = ("ssl-ca", "ssl_ca", "sslrootcert")


def tls_options(url: DatabaseURL) -> tuple[_ssl.SSLContext | None, bool]:
    """The SSL context for aiomysql and whether TLS is required, from the URL's ``ssl-mode`` (or
    ``ssl``/``sslmode``) and ``ssl-ca``. No parameter: no TLS, as before. ``ssl-ca`` alone means
    VERIFY_CA, as for MySQL's own client. An unknown mode is a configuration error."""
    mode_parameter = next((p for p in _MODE_PARAMETERS if p in url.query), None)
    ca_parameter = next((p for p in _CA_PARAMETERS if p in url.query), None)
    ca_file = url.query[ca_parameter] if ca_parameter else None
    if mode_parameter is None:
        mode = "verify_ca" if ca_file else "disabled"
    else:
        mode = _TLS_MODES.get(url.query[mode_parameter].strip().lower(), "")
        if not mode:
            raise ConfigurationError(
                f"{url.masked()}: unknown {mode_parameter} {url.query[mode_parameter]!r:.40} "
                "(use DISABLED, PREFERRED, REQUIRED, VERIFY_CA or VERIFY_IDENTITY)")
    if mode == "disabled":
        return None, False
    context = _ssl.create_default_context()
    if mode in ("preferred", "required"):  # encrypted, but any certificate is accepted
        context.check_hostname = False
        context.verify_mode = _ssl.CERT_NONE
    else:
        context.check_hostname = mode == "verify_identity"
    if ca_file:
        try:
            context.load_verify_locations(cafile=ca_file)
        except (OSError, _ssl.SSLError) as exc:
            raise ConfigurationError(f"{url.masked()}: cannot read {ca_parameter} {ca_file!r}: {exc}") from None
    return context, mode != "preferred"


class _Connection(_LoadingConnection):
    """aiomysql's connection, except that it will not authenticate without TLS when TLS is
    required (aiomysql by itself quietly goes on in plaintext when the server offers no TLS), and
    that it answers LOAD DATA LOCAL requests with our own writes' bytes only (``mysql_load.py``)."""

    tls_required = False

    async def _request_authentication(self) -> None:
        if self.tls_required and not self.server_capabilities & CLIENT.SSL:
            raise pymysql.err.OperationalError(
                2026, "TLS/SSL is required by the URL's ssl-mode, but the server does not offer it")
        await super()._request_authentication()


async def _connect(url: DatabaseURL) -> aiomysql.Connection:
    context, required = tls_options(url)
    # aiomysql's local_infile stays off: with it, the server (or anyone posing as it) may read any
    # client file. The LOCAL_FILES capability alone lets the server ask; _Connection answers only
    # while our own write has armed it, and never opens a file.
    conn = _Connection(
        host=url.host or "127.0.0.1", port=url.port or 3306, user=url.username or "root",
        password=url.password or "", db=url.database, charset="utf8mb4", autocommit=True,
        connect_timeout=30, local_infile=False, client_flag=CLIENT.LOCAL_FILES, ssl=context,
    )
    conn.tls_required = required
    await conn._connect()
    return conn


@contextlib.contextmanager
def _translated(url: DatabaseURL, table: str | None = None) -> Iterator[None]:
    where = f"MySQL: table {table}: " if table else "MySQL: "  # a write names its table
    try:
        yield
    except pymysql.err.IntegrityError as exc:
        raise IntegrityFailure(f"{where}{_message(exc)}") from exc
    except pymysql.err.MySQLError as exc:
        if exc.args and exc.args[0] in _CHECK_VIOLATED:  # pymysql files these under OperationalError
            raise IntegrityFailure(f"{where}{_message(exc)}") from exc
        raise _database_error(exc, where, url) from exc
    except OSError as exc:
        raise DatabaseError(f"MySQL {url.masked()}: connection lost: {exc}") from exc


_CHECK_VIOLATED = frozenset({3819, 4025})  # MySQL ER_CHECK_CONSTRAINT_VIOLATED, MariaDB ER_CONSTRAINT_FAILED


def _database_error(exc: Exception, where: str, url: DatabaseURL) -> DatabaseError:
    if isinstance(exc, (pymysql.err.DataError, pymysql.err.ProgrammingError, pymysql.err.NotSupportedError)):
        return DatabaseError(f"{where}{_message(exc)}")
    return DatabaseError(f"MySQL {url.masked()}: {_message(exc)}")


def _message(exc: Exception) -> str:
    args: tuple[Any, ...] = getattr(exc, "args", ())
    return str(args[1]) if len(args) >= 2 else str(exc)


def _column_type(data_type: str, column_type: str) -> T:
    if column_type.lower().startswith("tinyint(1)"):
        return T.BOOLEAN
    return _TYPES.get(data_type.lower(), T.TEXT)


def _live_column(name: str, data_type: str, column_type: str, nullable: str, fraction_digits: int | None,
                 octets: int | None, default: str | None) -> LiveColumn:
    """A column with what it keeps: DATETIME(p) keeps p fraction digits, FLOAT is single precision,
    TINYTEXT/TEXT/MEDIUMTEXT hold a fixed number of bytes (LONGTEXT's 4 GiB counts as unbounded)."""
    dtype = data_type.lower()
    timestamp = dtype in ("datetime", "timestamp")
    return LiveColumn(
        name, _column_type(data_type, column_type), nullable == "YES", column_type,
        fraction_digits=int(fraction_digits or 0) if timestamp else 6,
        single_precision=dtype == "float",
        max_bytes=int(octets) if dtype in _BOUNDED_TEXT and octets else None,
        default=None if default is None or default.upper() == "NULL" else default,
    )


_BOUNDED_TEXT = ("tinytext", "text", "mediumtext")


class MySQLConnection:
    capabilities = CAPABILITIES
    deferred_foreign_keys = False
    parents_first = False

    def __init__(self, url: DatabaseURL, conn: aiomysql.Connection) -> None:
        self.url = url
        self._conn = conn
        self._closed = False
        self.load_data = True  # False once the server refuses LOAD DATA LOCAL: INSERTs from then on

    @classmethod
    async def open(cls, url: DatabaseURL, *, read_only: bool = False) -> "MySQLConnection":
        try:
            conn = await _connect(url)
        except (OSError, _ssl.SSLError, pymysql.err.MySQLError) as exc:
            raise DatabaseError(f"cannot connect to {url.masked()}: {_message(exc)}") from exc
        if not url.database:
            conn.close()
            raise DatabaseError(f"{url.masked()}: the URL names no database")
        self = cls(url, conn)
        if "mariadb" in conn.get_server_info().lower():  # SET STATEMENT is MariaDB's own
            self.capabilities = MARIADB_CAPABILITIES
        await self.execute("SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION'")
        await self.execute("SET SESSION time_zone = '+00:00'")
        if read_only:
            await self.execute("SET SESSION TRANSACTION READ ONLY")
        return self

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            with contextlib.suppress(Exception):
                await shielded(self._conn.ensure_closed())
            self._conn.close()

    async def execute(self, sql: str, *params: Any) -> None:
        with _translated(self.url):
            async with self._conn.cursor() as cur:
                await cur.execute(sql, params or None)

    async def fetch(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with _translated(self.url):
            async with self._conn.cursor() as cur:
                await cur.execute(sql, params or None)
                return [tuple(r) for r in await cur.fetchall()]

    async def table_names(self) -> list[str]:
        rows = await self.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE() "
            "AND table_type = 'BASE TABLE' ORDER BY table_name")
        return [r[0] for r in rows]

    async def columns(self, table: str) -> list[LiveColumn]:
        rows = await self.fetch(
            "SELECT column_name, data_type, column_type, is_nullable, datetime_precision, "
            "character_octet_length, column_default FROM information_schema.columns "
            "WHERE table_schema = DATABASE() AND table_name = %s ORDER BY ordinal_position", table)
        return [_live_column(*row) for row in rows]

    async def index_names(self, table: str) -> list[str]:
        rows = await self.fetch(
            "SELECT DISTINCT index_name FROM information_schema.statistics WHERE table_schema = DATABASE() "
            "AND table_name = %s AND index_name <> 'PRIMARY' ORDER BY index_name", table)
        return [r[0] for r in rows]

    @contextlib.asynccontextmanager
    async def transaction(self, *, foreign_keys: bool = True) -> AsyncIterator[None]:
        # FOREIGN_KEY_CHECKS is per session: switched off and back on here, on this same connection.
        if not foreign_keys:
            await self.execute("SET FOREIGN_KEY_CHECKS = 0")
        try:
            await self.execute("START TRANSACTION")
            try:
                yield
            except BaseException:
                with contextlib.suppress(Exception):
                    await shielded(self._conn.rollback())
                raise
            with _translated(self.url):
                await self._conn.commit()
        finally:
            if not foreign_keys:
                with contextlib.suppress(Exception):
                    await shielded(self.execute("SET FOREIGN_KEY_CHECKS = 1"))

    @contextlib.asynccontextmanager
    async def snapshot(self, *, wait: bool = True) -> AsyncIterator[None]:  # starting one takes no lock
        await self.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        await self.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                await shielded(self._conn.rollback())

    async def read(self, table: str, columns: Sequence[str], *, batch_rows: int,
                   order_by: Sequence[str] = (), within: tuple[int, int] | None = None) -> AsyncIterator[list[Row]]:
        if within is not None:
            raise InternalError("this backend reads no slices (capabilities.sliced_reads)")
        sql = select_sql(self.capabilities, table, columns, order_by)
        async for rows in self._stream(sql, batch_rows):
            yield rows

    async def row_ranges(self, table: str, slices: int) -> list[tuple[int, int]] | None:
        return None

    async def fingerprints(self, table: str, key: str, columns: Sequence[LiveColumn], *, batch_rows: int,
                           keys: Sequence[Any] | None = None, share: tuple[int, int] = (0, 1),
                           changes: StorageChanges | None = None) -> AsyncIterator[tuple[list[Any], list[bytes]]]:
        # The server hashes each value's quoted form: QUOTE keeps NULL and 'NULL' apart, and the quotes
        # delimit the values. A FLOAT prints 6 digits, so it goes through DOUBLE, which prints them all.
        q = self.capabilities.quote
        sql = f"SELECT {q(key)}, UNHEX({self._print_hex(columns)}) FROM {q(table)}"
        if keys is not None:
            found = await self.fetch(f"{sql} WHERE {q(key)} IN ({self.capabilities.placeholders(len(keys))})",
                                     *keys) if keys else []
            yield [r[0] for r in found], [r[1] for r in found]
            return
        if share[1] > 1:
            sql += f" WHERE CRC32({q(key)}) % {int(share[1])} = {int(share[0])}"
        async for rows in self._stream(sql, batch_rows):
            yield [r[0] for r in rows], [r[1] for r in rows]

    async def _stream(self, sql: str, batch_rows: int) -> AsyncIterator[list[Row]]:
        with _translated(self.url):
            cursor = await self._conn.cursor(aiomysql.SSCursor)
            try:
                await cursor.execute(sql)
                size = min(batch_rows, PROBE_ROWS)
                while rows := await cursor.fetchmany(size):
                    yield list(rows)
                    if size == PROBE_ROWS:
                        size = rows_per_batch(rows, batch_rows)
            finally:
                await shielded(cursor.close())

    def _print_hex(self, columns: Sequence[LiveColumn]) -> str:
        q = self.capabilities.quote
        parts = ", ".join(f"QUOTE({q(c.name)} + 0e0)" if c.type is T.FLOAT else f"QUOTE({q(c.name)})"
                          for c in columns)
        return f"MD5(CONCAT_WS(0x1e, {parts}))"

    async def storage_changes(self, remembered: Mapping[str, Any]) -> dict[str, StorageChanges] | None:
        return None  # the server hashes the rows cheaper (so ``fingerprints`` is never given ``changes``)

    async def fingerprint_summary(self, table: str, key: str,
                                  columns: Sequence[LiveColumn]) -> tuple[int, int] | None:
        # The first 16 hex digits as a signed 64-bit number: unsigned, less 2^64 where the top bit is set.
        signed = "CAST(CONV(LEFT(h, 16), 16, 10) AS DECIMAL(20)) - IF(LEFT(h, 1) >= '8', 18446744073709551616, 0)"
        rows = await self.fetch(f"SELECT COUNT(*), CAST(COALESCE(SUM({signed}), 0) AS CHAR) FROM "
                                f"(SELECT {self._print_hex(columns)} AS h FROM {self.capabilities.quote(table)}) AS x")
        return int(rows[0][0]), int(rows[0][1])

    async def fingerprint_scope(self, table: str) -> str:
        return ""  # a fingerprint hashes the row's values: comparable whenever they are

    async def write(self, table: str, columns: Sequence[str], rows: Sequence[Row]) -> None:
        if not rows:
            return
        with _translated(self.url, table):
            hex_columns = hex_columns_of(rows) if self._loading() else None
            if hex_columns is None or not await self._load(table, columns, hex_columns, load_pieces(rows), len(rows)):
                await self._insert(table, columns, rows)

    def row_stream(self, table: str, columns: Sequence[str]) -> None:
        return None  # each batch is one statement (``write``, or ``line_writer``'s LOAD DATA)

    def line_writer(self, table: str, columns: Sequence[LiveColumn]) -> LoadLines | None:
        if not self.load_data or any(c.type is T.BYTES for c in columns):
            return None  # bytes go as hex, decided per batch: left to ``write``
        return LoadLines(self, table, tuple(c.name for c in columns))

    async def write_lines(self, table: str, columns: Sequence[str], lines: Sequence[bytes]) -> None:
        if not lines:
            return
        with _translated(self.url, table):
            if not (self._loading() and await self._load(table, columns, set(), line_pieces(lines), len(lines))):
                await self._insert(table, columns, rows_of_lines(lines))

    def _loading(self) -> bool:
        """Whether a batch may go by LOAD DATA now: allowed, inside a transaction (there is a savepoint
        to go back to), and with the backslash escapes its text uses."""
        status = self._conn.server_status
        return bool(self.load_data and status & SERVER_STATUS.SERVER_STATUS_IN_TRANS and fast_escaping(status))

    async def _load(self, table: str, columns: Sequence[str], hex_columns: set[int], pieces: Iterator[bytes],
                    count: int) -> bool:
        """Write ``count`` rows by LOAD DATA LOCAL of ``pieces``; False when they must go through
        INSERT instead.

        With LOCAL the server cannot stop the stream, so it turns duplicate keys and bad values into
        warnings and skips or changes those rows. Every batch is therefore checked (rows stored ==
        rows sent, no warning); a batch that fails the check is rolled back to the savepoint taken
        before it and replayed by INSERT, which raises the error the INSERT path always raised."""
        await self._conn.query("SAVEPOINT memoria_stream_batch")
        try:
            stored, warnings = await self._conn.load_local(
                load_statement(self.capabilities.quote, table, columns, hex_columns), pieces)
        except pymysql.err.MySQLError as exc:
            if exc.args and exc.args[0] in REFUSED_CODES:
                self._refused(exc)
                return False
            raise
        if stored == count and warnings == 0:
            return True
        await self._conn.query("ROLLBACK TO SAVEPOINT memoria_stream_batch")
        log.debug("LOAD DATA into %s stored %d of %d rows with %d warnings: replayed by INSERT",
                  table, stored, count, warnings)
        return False

    def _refused(self, exc: Exception) -> None:
        self.load_data = False
        if self.url.masked() not in _REFUSING:  # one line per database URL, however many connections
            _REFUSING.add(self.url.masked())
            log.info("%s refuses LOAD DATA LOCAL (%s): writing with INSERT", self.url.masked(), _message(exc))

    async def _insert(self, table: str, columns: Sequence[str], rows: Sequence[Row]) -> None:
        q = self.capabilities.quote
        head = f"INSERT INTO {q(table)} ({', '.join(q(c) for c in columns)}) VALUES "
        async with self._conn.cursor() as cur:
            if not fast_escaping(self._conn.server_status):
                cur.max_stmt_length = _MAX_STATEMENT
                await cur.executemany(f"{head}({self.capabilities.placeholders(len(columns))})", rows)
                return
            for sql in insert_statements(head, rows, self._conn.escape, self._conn.encoding, _MAX_STATEMENT):
                await cur.execute(sql)

    async def reset_sequence(self, table: str, column: str) -> None:
        # InnoDB moves AUTO_INCREMENT past every explicit id it stores; ALTER TABLE here would
        # commit the import's transaction implicitly, so nothing is done.
        return None

    async def foreign_keys(self, table: str) -> set[tuple[str, str, str]]:
        rows = await self.fetch(
            "SELECT column_name, referenced_table_name, referenced_column_name "
            "FROM information_schema.key_column_usage WHERE table_schema = DATABASE() "
            "AND table_name = %s AND referenced_table_name IS NOT NULL", table)
        return {(str(c), str(p), str(pc)) for c, p, pc in rows}

    async def indexes_blocking_drop(self, table: str, column: str) -> list[str]:
        return []  # dropping a column drops or shrinks the indexes on it

    async def database_size(self) -> int:
        # The InnoDB tablespace files of the database (they grow in extents, not per row, and unlike
        # data_length they are not a statistic recalculated in the background), plus
        # data_length + index_length of non-InnoDB tables.
        others = int((await self.fetch(_TABLES_SIZE.format(where="AND engine <> 'InnoDB'")))[0][0])
        for view in ("INNODB_SYS_TABLESPACES", "INNODB_TABLESPACES"):  # MariaDB, then MySQL 8
            with contextlib.suppress(DatabaseError):
                return int((await self.fetch(_FILES_SIZE.format(view=view)))[0][0]) + others
        return int((await self.fetch(_TABLES_SIZE.format(where="")))[0][0])  # no PROCESS privilege


_FILES_SIZE = ("SELECT coalesce(sum(file_size), 0) FROM information_schema.{view} "
               "WHERE LEFT(name, CHAR_LENGTH(DATABASE()) + 1) = CONCAT(DATABASE(), '/')")
_TABLES_SIZE = ("SELECT coalesce(sum(data_length + index_length), 0) FROM information_schema.tables "
                "WHERE table_schema = DATABASE() {where}")


async def connect(url: DatabaseURL, *, read_only: bool = False, blocking_reads: bool = False) -> MySQLConnection:
    # ``blocking_reads`` changes nothing here: the driver reads on the event loop's thread already.
    return await MySQLConnection.open(url, read_only=read_only)


class LoadLines:
    """A table's rows encoded as LOAD DATA lines ahead of their write (``Connection.line_writer``)."""

    def __init__(self, conn: MySQLConnection, table: str, columns: tuple[str, ...]) -> None:
        self._conn, self._table, self._columns = conn, table, columns

    def encode(self, rows: Sequence[Row]) -> list[bytes]:
        try:
            return load_lines(rows)
        except TypeError as exc:  # the import plan hands over none of those: a bug, not bad input
            raise InternalError(f"{self._table}: {exc}") from None

    async def write(self, lines: Sequence[bytes]) -> None:
        await self._conn.write_lines(self._table, self._columns, lines)
