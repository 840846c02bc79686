"""The one small protocol every driver implements, and the capabilities record generic code reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, AsyncContextManager, AsyncIterator, Callable, Mapping, Protocol, Sequence

from memoria_stream.model.types import ColumnType, Row
from memoria_stream.drivers.urls import DatabaseURL

Converter = Callable[[Any], Any]


@dataclass(frozen=True)
class KeyScan:
    """How a server is told to check every row of a table against another table's keys by reading
    those keys once (one scan, into a hash) instead of probing the other table's index per row: past
    the server's cache each probe is a random read (the FK check of a load, ``load.check_foreign_keys``)."""

    statement_prefix: str  # runs the check with the setting that rules the probes out
    # After the table whose keys are read: read it by its primary key. Inside the load's transaction
    # a secondary index that transaction wrote cannot tell which of its rows are visible, so each of
    # its entries would cost a lookup of the row itself.
    table_hint: str
    row_estimates_sql: str  # (table, approximate rows) of every table: whether the scan pays


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do and how it spells things; generic code reads this instead of the dialect name."""

    dialect: str  # "sqlite" | "postgresql" | "mysql"
    quote_char: str  # identifier quote
    placeholder: str  # "?", "$" (numbered $1, $2…) or "%s"
    bulk_copy: bool  # COPY FROM STDIN is available
    max_bind_params: int
    transactional_ddl: bool  # CREATE/ALTER can be rolled back
    ddl_types: Mapping[ColumnType, str]  # canonical type -> column type used when we create tables
    varchar: str  # format for bounded text, e.g. "VARCHAR({n})"
    autoincrement_pk: str  # column definition of an autoincrement integer primary key
    table_suffix: str = ""  # e.g. MySQL's ENGINE/CHARSET clause
    foreign_key_suffix: str = ""  # e.g. PostgreSQL's DEFERRABLE, so a load can defer FK checks
    settle_constraints_sql: str | None = None  # runs deferred FK checks now (before DDL in the load)
    index_if_not_exists: bool = True
    # What columns can hold (read by ``limits.value_check`` to name a value that does not fit):
    text_allows_nul: bool = True  # PostgreSQL rejects U+0000 in text
    enforces_text_length: bool = True  # SQLite ignores VARCHAR(n)
    sized_integers: bool = True  # SQLite integers are always 64-bit
    text_byte_limits: Mapping[str, int] = field(default_factory=dict)  # declared type -> max bytes
    # The ALTER TABLE clause that changes a column's type in place, keeping its rows
    # (``migration_helpers.widen_columns``); ``None`` where columns keep every value already.
    modify_column: str | None = None  # format with {column}, {definition}
    # The ALTER TABLE clause that makes a column NOT NULL (format with {column}, {definition});
    # ``None`` where a column cannot be altered (SQLite).
    set_not_null: str | None = None
    # ALTER TABLE … ADD CONSTRAINT … FOREIGN KEY works; where not (SQLite), a column that needs a
    # foreign key gets it inline in its ADD COLUMN.
    add_foreign_key_later: bool = True
    # Appended to DROP TABLE so that a table others reference can go (PostgreSQL's CASCADE); where
    # empty, the drop runs with FK checks switched off.
    drop_table_suffix: str = ""
    # More than one connection can write at once (SQLite's one file takes one writer at a time).
    parallel_writers: bool = True
    # Rows are stored in primary key order (InnoDB's clustered index): rows arriving in that order
    # append to the table's last page instead of splitting pages all over it.
    clustered_by_key: bool = False
    # ALTER TABLE … ADD INDEX a (…), ADD INDEX b (…) builds several indexes in one pass over the
    # table (MySQL), instead of one pass per CREATE INDEX.
    add_indexes_together: bool = False
    # ``fingerprints`` hashes rows in this process (SQLite cannot hash): a scan of them is Python
    # work worth sharing out between processes; elsewhere the server does it.
    fingerprints_in_client: bool = False
    # ``row_ranges`` cuts a table into slices that processes can read apart (SQLite's rowid): an
    # export, Python work, shares them out between this process and a worker on another core.
    sliced_reads: bool = False
    # The server parses JSON text on the way in and refuses what does not parse (PostgreSQL's
    # json and jsonb types): a copy hands it a source's stored JSON text as it is, unparsed.
    checks_json: bool = False
    # Where the server can be told to check rows against another table's keys in one scan of them.
    key_scan: KeyScan | None = None
    # Why a ``transaction(foreign_keys=False)`` could only defer FK checks, and how to grant more.
    deferred_foreign_keys_reason: str = "this user may not switch foreign key checks off"
    # Values from the file arrive canonical; these turn them into what the driver library expects
    # on write, and what it returns into canonical values on read (one place per backend).
    encoders: Mapping[ColumnType, Converter] = field(default_factory=dict)
    decoders: Mapping[ColumnType, Converter] = field(default_factory=dict)

    def quote(self, identifier: str) -> str:
        q = self.quote_char
        return f"{q}{identifier.replace(q, q + q)}{q}"

    def placeholders(self, count: int, start: int = 1) -> str:
        if self.placeholder == "$":
            return ", ".join(f"${i}" for i in range(start, start + count))
        return ", ".join([self.placeholder] * count)

    def column_type(self, ctype: ColumnType, length: int | None) -> str:
        if ctype is ColumnType.TEXT and length:
            return self.varchar.format(n=length)
        return self.ddl_types[ctype]


@dataclass(frozen=True)
class LiveColumn:
    """A column as the live database describes it."""

    name: str
    type: ColumnType
    nullable: bool
    declared_type: str = ""
    # What the column keeps of a value, where the backend keeps less than the canonical value holds
    # (read by ``limits.loss_check``): Memoria's MySQL DDL uses DATETIME, FLOAT and TEXT.
    fraction_digits: int = 6  # digits of fractional seconds a datetime column keeps
    single_precision: bool = False  # a 4-byte FLOAT: a double's digits beyond ~7 are lost
    max_bytes: int | None = None  # bytes a text column holds, where the backend bounds them
    default: str | None = None  # the default as the database spells it (SQL), where it tells


# In place of a fingerprint: the row is stored exactly as when its fingerprint was last taken unless
# it is in a unit of storage that changed since (``Connection.storage_changes``), so it was not read.
AS_REMEMBERED = b""


@dataclass
class StorageChanges:
    """One table's storage as ``Connection.storage_changes`` found it: the ``units`` to remember for
    the next look, the number of rows, and which rows sit in units that changed (the driver's own
    description, opaque here; None where nothing usable was remembered to compare with) with their
    number."""

    units: Any
    rows: int
    changed: Any = None
    changed_rows: int = 0


class LineWriter(Protocol):
    """Rows of one table (encoded with ``capabilities.encoders``) as lines of the connection's
    bulk-load text, and their write (``Connection.line_writer``)."""

    def encode(self, rows: Sequence[Row]) -> list[bytes]:
        """One line per row, in order; a line holds no newline byte."""
        ...

    async def write(self, lines: Sequence[bytes]) -> None: ...


class RowStream(Protocol):
    """Batches of one table's rows (encoded with ``capabilities.encoders``) written as one bulk
    load that stays open between them (``Connection.row_stream``)."""

    async def write(self, rows: Sequence[Row]) -> None:
        """Hand ``rows`` to the load; an error the server reported so far is raised here."""
        ...


class Connection(Protocol):
    """One open connection to one database. Use it as ``async with connect(url) as conn``."""

    url: DatabaseURL
    capabilities: Capabilities
    # True inside a ``transaction(foreign_keys=False)`` that could only defer FK checks (not switch
    # them off): deletes then still cascade into tables already loaded.
    deferred_foreign_keys: bool
    # True inside such a transaction when some FK could not even be deferred (not DEFERRABLE): rows
    # are then checked as they are inserted, so parents must be loaded before their children.
    parents_first: bool

    async def aclose(self) -> None: ...

    async def execute(self, sql: str, *params: Any) -> None: ...

    async def fetch(self, sql: str, *params: Any) -> list[tuple[Any, ...]]: ...

    async def table_names(self) -> list[str]: ...

    async def columns(self, table: str) -> list[LiveColumn]:
        """The live columns of ``table`` in table order; an empty list when the table does not exist."""
        ...

    async def index_names(self, table: str) -> list[str]: ...

    def transaction(self, *, foreign_keys: bool = True) -> AsyncContextManager[None]:
        """A write transaction; ``foreign_keys=False`` switches FK enforcement off for its length only."""
        ...

    def snapshot(self, *, wait: bool = True) -> AsyncContextManager[None]:
        """A read-only transaction that sees one consistent moment of the database.
        ``wait=False``: raise ``DatabaseError`` at once rather than wait for a lock to start it (a
        snapshot joining one that already holds the moment; see ``drivers.snapshots``)."""
        ...

    def read(self, table: str, columns: Sequence[str], *, batch_rows: int,
             order_by: Sequence[str] = (), within: tuple[int, int] | None = None) -> AsyncIterator[list[Row]]:
        """Raw driver values of ``columns`` in batches (convert with ``capabilities.decoders``),
        sorted by ``order_by`` where given; only the rows of one of ``row_ranges``, where ``within``."""
        ...

    async def row_ranges(self, table: str, slices: int) -> list[tuple[int, int]] | None:
        """About ``slices`` ranges of the table's own row order (SQLite's rowid) that ``read(within=…)``
        reads one by one, each in the order a plain ``read`` has; ``None`` where the backend has none
        (``capabilities.sliced_reads``)."""
        ...

    def fingerprints(self, table: str, key: str, columns: Sequence[LiveColumn], *, batch_rows: int,
                     keys: Sequence[Any] | None = None, share: tuple[int, int] = (0, 1),
                     changes: StorageChanges | None = None) -> AsyncIterator[tuple[list[Any], list[bytes]]]:
        """Each row's ``key`` and a fingerprint of its stored ``columns`` (of the rows of ``keys`` only,
        where given; of the ``share`` = (i, n)-th of n disjoint shares of the rows, where n > 1), in
        batches, computed where it costs least (by the server where it can hash; see
        ``capabilities.fingerprints_in_client``). With ``changes`` (this snapshot's, from
        ``storage_changes``), of the rows in its changed units only.

        Equal fingerprints mean equal stored values (but for a hash collision); a changed value changes
        the fingerprint. A fingerprint covers the row's key too, and its first 8 bytes are as spread
        as a hash's (``fingerprint_summary`` sums them). Only fingerprints of one database, taken the
        same way, compare: they say whether a row changed since, never whether two databases agree
        (``copy --sync``'s memory)."""
        ...

    async def fingerprint_summary(self, table: str, key: str,
                                  columns: Sequence[LiveColumn]) -> tuple[int, int] | None:
        """(rows, sum) over the table of each fingerprint's first 8 bytes as a signed 64-bit number
        (``keyspool.summary_of``), computed by the server without sending a row; None where the
        fingerprints are computed in the client anyway."""
        ...

    async def storage_changes(self, remembered: Mapping[str, Any]) -> dict[str, StorageChanges] | None:
        """Inside a snapshot, per table of ``remembered``: the units of storage that hold its rows now
        and, against the units remembered from an earlier look (None: none), which rows sit in units
        that changed since — found without reading a row, where the backend can (a SQLite file in
        rollback-journal mode); None where it cannot (a server hashes rows cheaper than this)."""
        ...

    async def fingerprint_scope(self, table: str) -> str:
        """What ``fingerprints`` of ``table`` are only comparable within (the same cluster, database,
        relation…; empty where a fingerprint hashes the row's values): remembered with them, and a
        memory taken within another scope is not used."""
        ...

    async def write(self, table: str, columns: Sequence[str], rows: Sequence[Row]) -> None:
        """Insert one batch of rows already encoded with ``capabilities.encoders``."""
        ...

    def row_stream(self, table: str, columns: Sequence[str]) -> AsyncContextManager[RowStream] | None:
        """Where one bulk load can take many batches: ``async with`` it to write ``table``'s
        ``columns`` batch after batch, the load ending (and its errors raised) as the block ends.
        Nothing else may use the connection meanwhile. None where each batch goes to ``write``."""
        ...

    def line_writer(self, table: str, columns: Sequence[LiveColumn]) -> LineWriter | None:
        """Where this connection loads rows as lines of text: a writer of ``table``'s ``columns``
        whose rows are encoded before they are written, so that a load holding them back (sorted
        into key order, spooled) holds compact lines rather than Python rows. None where rows go to
        ``write`` as they are."""
        ...

    async def reset_sequence(self, table: str, column: str) -> None:
        """Move the table's id generator past the largest id in ``column``."""
        ...

    async def foreign_keys(self, table: str) -> set[tuple[str, str, str]]:
        """The live foreign keys of ``table`` as (column, parent table, parent column)."""
        ...

    async def indexes_blocking_drop(self, table: str, column: str) -> list[str]:
        """The indexes that must be dropped before ``column`` can be (SQLite refuses to drop an
        indexed column; PostgreSQL and MySQL drop or shrink such indexes themselves)."""
        ...

    async def database_size(self) -> int:
        """The bytes the data *uses*, chosen so that neither our own work (a backup reads only)
        nor harmless background activity (autovacuum, statistics) moves it; see ``backup_guard``."""
        ...



def select_sql(capabilities: Capabilities, table: str, columns: Sequence[str], order_by: Sequence[str] = ()) -> str:
    """``SELECT columns FROM table [ORDER BY …]``, identifiers quoted as the backend spells them."""
    q = capabilities.quote
    sql = f"SELECT {', '.join(q(c) for c in columns)} FROM {q(table)}"
    return f"{sql} ORDER BY {', '.join(q(c) for c in order_by)}" if order_by else sql


async def count_rows(conn: Connection, table: str) -> int:
    """``SELECT count(*)`` of one table (inside the connection's transaction or snapshot, if any)."""
    rows = await conn.fetch(f"SELECT count(*) FROM {conn.capabilities.quote(table)}")
    return int(rows[0][0])


# Reads are bounded by bytes as well as rows: a batch of 5,000 long memories is tens of MB of
# Python objects, and a few such batches queued between stages would dominate peak memory.
READ_BATCH_BYTES = 1 << 20
PROBE_ROWS = 64


def approximate_bytes(rows: Sequence[Row]) -> int:
    """Text and binary lengths plus 8 per other value: a cheap size estimate for batching."""
    return sum(len(v) if isinstance(v, (str, bytes)) else 8 for row in rows for v in row)


def rows_per_batch(sample: Sequence[Row], batch_rows: int, target: int = READ_BATCH_BYTES) -> int:
    """How many rows like ``sample`` (a table's first rows) make a batch of about ``target`` bytes."""
    if not sample:
        return batch_rows
    per_row = max(1, approximate_bytes(sample) // len(sample))
    return max(1, min(batch_rows, target // per_row))


async def shielded(awaitable: Any) -> None:
    """Await cleanup (rollback, close) even while the surrounding scope is being cancelled."""
    import anyio

    with anyio.CancelScope(shield=True):
        await awaitable
