"""PostgreSQL through asyncpg: server-side cursors for reads, binary COPY for writes."""

from __future__ import annotations

import contextlib
from typing import Any, AsyncIterator, Iterator, Mapping, Sequence

import anyio
import asyncpg
from anyio.streams.memory import MemoryObjectSendStream

from memoria_stream.errors import ConfigurationError, DatabaseError, IntegrityFailure, InternalError
from memoria_stream.model.types import ColumnType as T, Row
from memoria_stream.drivers.urls import DatabaseURL
from memoria_stream.model.values import json_from_text, json_to_text
from memoria_stream.drivers.base import PROBE_ROWS, Capabilities, LiveColumn, RowStream, StorageChanges, rows_per_batch, shielded, select_sql

CAPABILITIES = Capabilities(
    dialect="postgresql",
    quote_char='"',
    placeholder="$",
    bulk_copy=True,
    max_bind_params=32767,
    transactional_ddl=True,
    ddl_types={
        T.TEXT: "TEXT", T.INTEGER: "INTEGER", T.FLOAT: "DOUBLE PRECISION", T.BOOLEAN: "BOOLEAN",
        T.TIMESTAMP: "TIMESTAMP WITHOUT TIME ZONE", T.JSON: "JSON", T.BYTES: "BYTEA",
    },
    varchar="VARCHAR({n})",
    autoincrement_pk="SERIAL NOT NULL",
    # Deferrable FKs let a load without the privilege for replica mode defer checks to COMMIT.
    foreign_key_suffix=" DEFERRABLE INITIALLY IMMEDIATE",
    settle_constraints_sql="SET CONSTRAINTS ALL IMMEDIATE",
    text_allows_nul=False,
    checks_json=True,
    set_not_null="ALTER COLUMN {column} SET NOT NULL",
    drop_table_suffix=" CASCADE",
    deferred_foreign_keys_reason=("this PostgreSQL user may not switch FK triggers off "
                                  "(GRANT SET ON PARAMETER session_replication_role)"),
    encoders={T.JSON: json_to_text},
    decoders={T.JSON: json_from_text},
)

_TYPES = {
    "character varying": T.TEXT, "text": T.TEXT, "character": T.TEXT, "uuid": T.TEXT,
    "integer": T.INTEGER, "bigint": T.INTEGER, "smallint": T.INTEGER,
    "double precision": T.FLOAT, "real": T.FLOAT, "numeric": T.FLOAT,
    "boolean": T.BOOLEAN, "timestamp without time zone": T.TIMESTAMP, "timestamp with time zone": T.TIMESTAMP,
    "json": T.JSON, "jsonb": T.JSON, "bytea": T.BYTES,
}


@contextlib.contextmanager
def _translated(url: DatabaseURL) -> Iterator[None]:
    try:
        yield
    except asyncpg.IntegrityConstraintViolationError as exc:
        raise IntegrityFailure(f"PostgreSQL: {_message(exc)}") from exc
    except asyncpg.PostgresError as exc:
        raise DatabaseError(f"PostgreSQL: {_message(exc)}") from exc
    except (OSError, asyncpg.InterfaceError, asyncpg.exceptions.ConnectionDoesNotExistError,
            asyncpg.exceptions._base.InternalClientError) as exc:  # a session killed mid-fetch surfaces as either
        raise DatabaseError(f"PostgreSQL {url.masked()}: connection lost: {exc}") from exc


def _message(exc: Exception) -> str:
    detail = getattr(exc, "detail", None)
    return f"{exc} ({detail})" if detail else str(exc)


# libpq's sslmode values (asyncpg takes them as they are), and the ssl=true/false spelling.
_SSL_MODES = {"disable", "allow", "prefer", "require", "verify-ca", "verify-full"}
_SSL_FLAGS = {"true": "require", "1": "require", "false": "disable", "0": "disable"}


def _ssl_option(url: DatabaseURL) -> str | None:
    """``?sslmode=`` (or ``?ssl=``) for asyncpg; no parameter keeps asyncpg's default (``prefer``).
    An unknown value is a configuration error rather than a guess."""
    parameter = next((p for p in ("sslmode", "ssl") if url.query.get(p)), None)
    if parameter is None:
        return None
    value = url.query[parameter].strip().lower()
    mode = _SSL_FLAGS.get(value, value)
    if mode not in _SSL_MODES:
        raise ConfigurationError(f"{url.masked()}: unknown {parameter} {url.query[parameter]!r:.40} "
                                 f"(use one of {', '.join(sorted(_SSL_MODES))})")
    return mode


def _version_hash(key: str) -> str:
    """A 64-bit hash of a row version (see ``fingerprints``) and its key: the server's own text hash."""
    return f"hashtextextended({key}::text || '/' || xmin::text || ctid::text, 0)"


class _CopyStream:
    """The writing end of ``PostgresConnection.row_stream``: batches queue for the COPY's task."""

    def __init__(self, send: MemoryObjectSendStream[Sequence[Row]]) -> None:
        self._send = send
        # The COPY's own error, raised in the writer as ``write`` would raise it: the server's as a
        # DatabaseError, a row asyncpg cannot encode as its TypeError, IndexError or OverflowError.
        self.failure: Exception | None = None

    async def write(self, rows: Sequence[Row]) -> None:
        with contextlib.suppress(anyio.BrokenResourceError):  # the COPY ended early: its error follows
            await self._send.send(rows)
        self.raise_failure()

    def raise_failure(self) -> None:
        if self.failure is not None:
            raise self.failure


class PostgresConnection:
    capabilities = CAPABILITIES
    deferred_foreign_keys = False
    parents_first = False

    def __init__(self, url: DatabaseURL, conn: asyncpg.Connection) -> None:
        self.url = url
        self._conn = conn
        self._closed = False

    @classmethod
    async def open(cls, url: DatabaseURL, *, read_only: bool = False) -> "PostgresConnection":
        settings = {"application_name": "memoria-stream"}
        if read_only:
            settings["default_transaction_read_only"] = "on"
        if url.query.get("schema"):
            settings["search_path"] = url.query["schema"]
        try:
            conn = await asyncpg.connect(
                host=url.host or url.query.get("host"), port=url.port or 5432, user=url.username,
                password=url.password, database=url.database, ssl=_ssl_option(url),
                server_settings=settings, timeout=30,
            )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            raise DatabaseError(f"cannot connect to {url.masked()}: {exc}") from exc
        return cls(url, conn)

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            with contextlib.suppress(Exception):
                await shielded(self._conn.close(timeout=5))

    def terminate(self) -> None:
        self._conn.terminate()

    async def execute(self, sql: str, *params: Any) -> None:
        with _translated(self.url):
            await self._conn.execute(sql, *params)

    async def fetch(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with _translated(self.url):
            return [tuple(r) for r in await self._conn.fetch(sql, *params)]

    async def table_names(self) -> list[str]:
        rows = await self.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() "
            "AND table_type = 'BASE TABLE' ORDER BY table_name")
        return [r[0] for r in rows]

    async def columns(self, table: str) -> list[LiveColumn]:
        rows = await self.fetch(
            "SELECT column_name, data_type, is_nullable, character_maximum_length FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position", table)
        return [LiveColumn(name, _TYPES.get(dtype, T.TEXT), nullable == "YES", f"{dtype}({size})" if size else dtype)
                for name, dtype, nullable, size in rows]

    async def index_names(self, table: str) -> list[str]:
        rows = await self.fetch(
            "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND tablename = $1 "
            "AND indexname NOT LIKE '%_pkey' ORDER BY indexname", table)
        return [r[0] for r in rows]

    @contextlib.asynccontextmanager
    async def transaction(self, *, foreign_keys: bool = True) -> AsyncIterator[None]:
        tx = self._conn.transaction()
        with _translated(self.url):
            await tx.start()
        try:
            if not foreign_keys:
                await self._foreign_keys_off()
            yield
        except BaseException:
            self.deferred_foreign_keys = self.parents_first = False
            with contextlib.suppress(Exception):
                await shielded(tx.rollback())
            raise
        self.deferred_foreign_keys = self.parents_first = False
        with _translated(self.url):
            await tx.commit()

    async def _foreign_keys_off(self) -> None:
        # Replica mode skips FK triggers (so deletes do not cascade and any table order loads);
        # SET LOCAL ends with the transaction, so the setting cannot leak to another user.
        try:
            async with self._conn.transaction():
                await self._conn.execute("SET LOCAL session_replication_role = replica")
        except asyncpg.InsufficientPrivilegeError:
            # Without the privilege: deferrable FKs (all that memoria-stream creates) are checked at
            # COMMIT, so any table order still loads; deletes do cascade then (documented).
            await self._conn.execute("SET CONSTRAINTS ALL DEFERRED")
            self.deferred_foreign_keys = True
            # FKs that cannot be deferred (tables Memoria created) are checked row by row: the load
            # must then insert parents before children.
            self.parents_first = bool(await self._conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid "
                "WHERE c.contype = 'f' AND NOT c.condeferrable AND t.relnamespace = current_schema()::regnamespace)"))

    @contextlib.asynccontextmanager
    async def snapshot(self, *, wait: bool = True) -> AsyncIterator[None]:  # starting one takes no lock
        tx = self._conn.transaction(isolation="repeatable_read", readonly=True)
        with _translated(self.url):
            await tx.start()
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                await shielded(tx.rollback())

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
        # A row version's identity, not its content: every UPDATE writes a new tuple with the writing
        # transaction's id (xmin) at some place (ctid), so an unchanged (xmin, ctid) is an unchanged row,
        # read without detoasting a byte — hashed with the key into 8 bytes, so that the server sums
        # them cheaply (``fingerprint_summary``). xmin is unique within a cluster up to wraparound,
        # which ``fingerprint_scope`` accounts for once per table rather than in every print.
        q = self.capabilities.quote
        sql = f"SELECT {q(key)}, int8send({_version_hash(q(key))}) FROM {q(table)}"
        if keys is not None:
            found = await self.fetch(f"{sql} WHERE {q(key)} = ANY($1)", list(keys))
            yield [r[0] for r in found], [r[1] for r in found]
            return
        if share[1] > 1:  # by heap page
            sql += f" WHERE (ctid::text::point)[0]::bigint % {int(share[1])} = {int(share[0])}"
        async for rows in self._stream(sql, batch_rows):
            yield [r[0] for r in rows], [r[1] for r in rows]

    async def storage_changes(self, remembered: Mapping[str, Any]) -> dict[str, StorageChanges] | None:
        return None  # the server hashes a row version cheaper (so ``fingerprints`` is never given ``changes``)

    async def fingerprint_summary(self, table: str, key: str,
                                  columns: Sequence[LiveColumn]) -> tuple[int, int] | None:
        q = self.capabilities.quote
        sql = f"SELECT count(*), coalesce(sum({_version_hash(q(key))}), 0)::text FROM {q(table)}"
        count, total = (await self.fetch(sql))[0]
        return int(count), int(total)

    async def fingerprint_scope(self, table: str) -> str:
        # The cluster, the database, the table and the current 2^31-xid era: any of them moving (a
        # restored or re-initialised cluster, a recreated table, wraparound) makes every row look
        # changed — compared in full — never the other way round.
        row = (await self.fetch(
            "SELECT (SELECT system_identifier FROM pg_control_system()), "
            "(SELECT oid FROM pg_database WHERE datname = current_database()), $1::regclass::oid, "
            "txid_snapshot_xmax(txid_current_snapshot()) >> 31", self.capabilities.quote(table)))[0]
        return "/".join(str(int(v)) for v in row)

    async def _stream(self, sql: str, batch_rows: int) -> AsyncIterator[list[Row]]:
        if self._conn.is_in_transaction():
            async for rows in self._cursor(sql, batch_rows):
                yield rows
            return
        async with self.snapshot():  # server-side cursors live inside a transaction
            async for rows in self._cursor(sql, batch_rows):
                yield rows

    async def _cursor(self, sql: str, batch_rows: int) -> AsyncIterator[list[Row]]:
        with _translated(self.url):
            cursor = await self._conn.cursor(sql)
            size = min(batch_rows, PROBE_ROWS)
            while rows := await cursor.fetch(size):
                yield rows
                if size == PROBE_ROWS:
                    size = rows_per_batch(rows, batch_rows)

    async def write(self, table: str, columns: Sequence[str], rows: Sequence[Row]) -> None:
        with _translated(self.url):
            await self._conn.copy_records_to_table(table, records=rows, columns=list(columns))

    @contextlib.asynccontextmanager
    async def row_stream(self, table: str, columns: Sequence[str]) -> AsyncIterator[RowStream]:
        # One COPY for many batches: a COPY per batch waits for the server to finish each batch
        # before the next one is sent, and pays the statement's start every time.
        send, receive = anyio.create_memory_object_stream[Sequence[Row]](1)
        stream = _CopyStream(send)

        async def rows() -> AsyncIterator[Row]:
            async with receive:
                async for batch in receive:
                    for row in batch:
                        yield row

        async def copy() -> None:
            try:
                with _translated(self.url):
                    await self._conn.copy_records_to_table(table, records=rows(), columns=list(columns))
            except Exception as exc:  # raised in the writer, not wrapped in the task group's exception group
                stream.failure = exc
            finally:
                receive.close()  # a write after a failure raises it rather than waiting for room

        abandoned: BaseException | None = None
        async with anyio.create_task_group() as group:
            group.start_soon(copy)
            try:
                yield stream
            except BaseException as exc:  # raised past the group, not wrapped in its exception group
                abandoned = exc
                group.cancel_scope.cancel()  # asyncpg ends the COPY with CopyFail: nothing is loaded
            finally:
                send.close()
        if abandoned is not None:
            raise abandoned
        stream.raise_failure()

    def line_writer(self, table: str, columns: Sequence[LiveColumn]) -> None:
        return None  # rows go to ``write`` as they are

    async def reset_sequence(self, table: str, column: str) -> None:
        rows = await self.fetch("SELECT pg_get_serial_sequence($1, $2)", self.capabilities.quote(table), column)
        if rows and rows[0][0]:
            q = self.capabilities.quote
            await self.execute(
                f"SELECT setval($1, coalesce((SELECT max({q(column)}) FROM {q(table)}), 0) + 1, false)", rows[0][0])

    async def foreign_keys(self, table: str) -> set[tuple[str, str, str]]:
        rows = await self.fetch(
            "SELECT kcu.column_name, ccu.table_name, ccu.column_name "
            "FROM information_schema.table_constraints tc "
            "JOIN information_schema.key_column_usage kcu "
            "  ON tc.constraint_name = kcu.constraint_name AND tc.table_schema = kcu.table_schema "
            "JOIN information_schema.constraint_column_usage ccu "
            "  ON tc.constraint_name = ccu.constraint_name AND tc.table_schema = ccu.table_schema "
            "WHERE tc.constraint_type = 'FOREIGN KEY' AND tc.table_schema = current_schema() "
            "AND tc.table_name = $1", table)
        return {(str(c), str(p), str(pc)) for c, p, pc in rows}

    async def indexes_blocking_drop(self, table: str, column: str) -> list[str]:
        return []  # dropping a column drops the indexes on it

    async def database_size(self) -> int:
        # The main fork of every user table, index, sequence and their TOAST tables: not the
        # free-space and visibility maps autovacuum creates, not the catalogues' statistics.
        return int((await self.fetch(_SIZE))[0][0])


_SIZE = """
WITH rel AS (
  SELECT c.oid, nullif(c.reltoastrelid, 0) AS toast FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind IN ('r', 'i', 'm', 'S', 'p')
    AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND n.nspname NOT LIKE 'pg_temp%'
    AND n.nspname NOT LIKE 'pg_toast_temp%')
SELECT coalesce(sum(pg_relation_size(oid)), 0) + coalesce(sum(pg_relation_size(toast)), 0) FROM rel"""


async def connect(url: DatabaseURL, *, read_only: bool = False, blocking_reads: bool = False) -> PostgresConnection:
    # ``blocking_reads`` changes nothing here: the driver reads on the event loop's thread already.
    return await PostgresConnection.open(url, read_only=read_only)
