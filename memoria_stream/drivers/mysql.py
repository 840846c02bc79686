"""MySQL and MariaDB through aiomysql: unbuffered reads, multi-row INSERTs under max_allowed_packet."""

from __future__ import annotations

import contextlib
from typing import Any, AsyncIterator, Iterator, Sequence

import aiomysql
import pymysql

from ..errors import DatabaseError, IntegrityFailure
from ..types import ColumnType as T, Row
from ..urls import DatabaseURL
from ..values import json_from_text, json_to_text
from .base import PROBE_ROWS, Capabilities, LiveColumn, rows_per_batch, shielded
from .mysql_literals import fast_escaping, insert_statements

CAPABILITIES = Capabilities(
    dialect="mysql",
    quote_char="`",
    placeholder="%s",
    bulk_copy=False,
    max_bind_params=65535,
    transactional_ddl=False,
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
    encoders={T.JSON: json_to_text},
    decoders={T.JSON: json_from_text, T.BOOLEAN: bool, T.FLOAT: float},
)

_TYPES = {
    "varchar": T.TEXT, "char": T.TEXT, "text": T.TEXT, "tinytext": T.TEXT, "mediumtext": T.TEXT,
    "longtext": T.TEXT, "enum": T.TEXT, "int": T.INTEGER, "bigint": T.INTEGER, "smallint": T.INTEGER,
    "mediumint": T.INTEGER, "tinyint": T.INTEGER, "float": T.FLOAT, "double": T.FLOAT, "decimal": T.FLOAT,
    "datetime": T.TIMESTAMP, "timestamp": T.TIMESTAMP, "json": T.JSON, "blob": T.BYTES,
    "longblob": T.BYTES, "varbinary": T.BYTES, "binary": T.BYTES,
}

# The statement size aiomysql's executemany packs rows into; far below the 16 MiB max_allowed_packet default.
_MAX_STATEMENT = 4 * 1024 * 1024


@contextlib.contextmanager
def _translated(url: DatabaseURL) -> Iterator[None]:
    try:
        yield
    except pymysql.err.IntegrityError as exc:
        raise IntegrityFailure(f"MySQL: {_message(exc)}") from exc
    except (pymysql.err.DataError, pymysql.err.ProgrammingError, pymysql.err.NotSupportedError) as exc:
        raise DatabaseError(f"MySQL: {_message(exc)}") from exc
    except pymysql.err.MySQLError as exc:
        raise DatabaseError(f"MySQL {url.masked()}: {_message(exc)}") from exc
    except OSError as exc:
        raise DatabaseError(f"MySQL {url.masked()}: connection lost: {exc}") from exc


def _message(exc: Exception) -> str:
    args: tuple[Any, ...] = getattr(exc, "args", ())
    return str(args[1]) if len(args) >= 2 else str(exc)


def _column_type(data_type: str, column_type: str) -> T:
    if column_type.lower().startswith("tinyint(1)"):
        return T.BOOLEAN
    return _TYPES.get(data_type.lower(), T.TEXT)


class MySQLConnection:
    capabilities = CAPABILITIES
    deferred_foreign_keys = False
    parents_first = False

    def __init__(self, url: DatabaseURL, conn: aiomysql.Connection) -> None:
        self.url = url
        self._conn = conn
        self._closed = False

    @classmethod
    async def open(cls, url: DatabaseURL) -> "MySQLConnection":
        try:
            conn = await aiomysql.connect(
                host=url.host or "127.0.0.1", port=url.port or 3306, user=url.username or "root",
                password=url.password or "", db=url.database, charset="utf8mb4", autocommit=True,
                connect_timeout=30, local_infile=True,
            )
        except (OSError, pymysql.err.MySQLError) as exc:
            raise DatabaseError(f"cannot connect to {url.masked()}: {_message(exc)}") from exc
        if not url.database:
            conn.close()
            raise DatabaseError(f"{url.masked()}: the URL names no database")
        self = cls(url, conn)
        await self.execute("SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION'")
        await self.execute("SET SESSION time_zone = '+00:00'")
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
            "SELECT column_name, data_type, column_type, is_nullable FROM information_schema.columns "
            "WHERE table_schema = DATABASE() AND table_name = %s ORDER BY ordinal_position", table)
        return [LiveColumn(name, _column_type(dtype, ctype), nullable == "YES", ctype)
                for name, dtype, ctype, nullable in rows]

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
    async def snapshot(self) -> AsyncIterator[None]:
        await self.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        await self.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                await shielded(self._conn.rollback())

    async def read(self, table: str, columns: Sequence[str], *, batch_rows: int) -> AsyncIterator[list[Row]]:
        q = self.capabilities.quote
        sql = f"SELECT {', '.join(q(c) for c in columns)} FROM {q(table)}"
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

    async def write(self, table: str, columns: Sequence[str], rows: Sequence[Row]) -> None:
        q = self.capabilities.quote
        head = f"INSERT INTO {q(table)} ({', '.join(q(c) for c in columns)}) VALUES "
        with _translated(self.url):
            async with self._conn.cursor() as cur:
                if not rows:
                    return
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


async def connect(url: DatabaseURL) -> MySQLConnection:
    return await MySQLConnection.open(url)
