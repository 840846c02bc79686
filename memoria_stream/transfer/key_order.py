"""A table's rows handed back in primary key order, for a target that stores rows in that order.

Why: InnoDB keeps every table in its primary key's order, and Memoria's keys are random text
(UUIDs). Rows loaded in file order land on random pages, and past the buffer pool each one costs a
random page read and a split: the same server loads the same 500k rows in 115 s in file order and in
24 s in key order. An import cannot choose its file's order, so it sorts: rows gather in memory up to
``RUN_BYTES`` of input, are sorted and, when the table holds more, written as a sorted run to the
import's private spool (0600 in a 0700 directory); the runs are merged back when the table ends.
Memory stays flat however large the table: one run in memory, one block per run while merging.

The order is Python's order of the key text. It is a question of speed only (the server places
every row where its collation says): for the hexadecimal keys Memoria writes the two agree.

Where the target loads lines of text (``Connection.line_writer``: MySQL's LOAD DATA), rows are
encoded as they are added and the runs hold lines, each behind its key: spooling raw lines costs a
write, where pickling the same rows and reading them back cost 8.7 of the 44 CPU-s of a 500k-row
import into MariaDB.
"""

from __future__ import annotations

import heapq
import operator
import pickle
from itertools import islice
from pathlib import Path
from typing import IO, Any, Callable, Iterable, Iterator, Protocol, Sequence

from memoria_stream.drivers.base import LineWriter
from memoria_stream.model.catalog import get_table
from memoria_stream.model.types import ColumnType, Row
from memoria_stream.transfer.spool import Spool

RUN_BYTES = 8 * 1024 * 1024  # input bytes sorted in memory at a time
BLOCK_ROWS = 128  # rows per pickled block: the merge holds one block of each run
FAN_IN = 32  # runs merged at once; more of one size are first merged into one larger run
# Lines go to the server in statements this large (input bytes), larger than the batches read: this
# process decodes the next table on the same thread, and the server idles from the end of one
# statement until that work lets the next one be sent. At 8 MB a statement keeps it busy for about
# 0.4 s instead of 0.05 s (a 500k-row import into MariaDB: 44.2 s against 50.3 s, medians of 3);
# the statement's lines and their copy in the socket's buffer cost about twice this in memory.
LINE_BATCH_BYTES = 8 * 1024 * 1024


class KeyOrder:
    """Collects a table's rows (``add``) and gives them back sorted by the key at ``key_at``: as
    rows, or, given a ``writer``, as its lines."""

    def __init__(self, spool: Spool, key_at: int, run_bytes: int = RUN_BYTES, *,
                 writer: LineWriter | None = None) -> None:
        self.spool, self.run_bytes, self.writer = spool, run_bytes, writer
        self._key = _text_key(key_at)
        self._runs: _Runs = _RowRuns(self._key) if writer is None else _LineRuns()
        self._pending: list[Any] = []  # rows, or keyed lines
        self._pending_bytes = 0
        self._levels: list[list[Path]] = []  # runs by size: level n holds runs of FAN_IN**n spills
        self.rows = self.bytes = self.batches = 0  # added so far
        self._passed: str | None = None  # the last key of the rows that passed in order

    def passes(self, rows: list[Row]) -> bool:
        """Whether ``rows`` can be written as they are: nothing is held yet and they go on in key
        order from the last rows that passed (a source read in key order is never held back)."""
        if self.rows:
            return False
        if not rows:
            return True
        keys = list(map(self._key, rows))
        if (self._passed is not None and keys[0] < self._passed) or not all(map(operator.le, keys, keys[1:])):
            return False
        self._passed = keys[-1]
        return True

    def add(self, rows: list[Row], size: int) -> None:
        if self.writer is None:
            self._pending.extend(rows)
        else:
            self._pending.extend(map(_keyed, map(self._key, rows), self.writer.encode(rows)))
        self._pending_bytes += size
        self.rows += len(rows)
        self.bytes += size
        self.batches += 1
        if self._pending_bytes >= self.run_bytes:
            self._spill()

    def sorted_rows(self) -> Iterator[Any]:
        """Every row added (or its line, given a writer), in key order; the spooled runs are
        removed as they are read."""
        if not self._levels:
            held, self._pending = self._pending, []
            held.sort(key=self._runs.key)
            return self._runs.unwrap(iter(held))
        self._spill()
        runs = [path for level in self._levels for path in level]
        self._levels = []
        return self._runs.unwrap(self._merged(runs))

    def _merged(self, runs: list[Path]) -> Iterator[Any]:
        return heapq.merge(*map(self._runs.read, runs), key=self._runs.key)

    def _spill(self) -> None:
        if not self._pending:
            return
        self._pending.sort(key=self._runs.key)
        self._add_run(0, self._pending)
        self._pending, self._pending_bytes = [], 0

    def _add_run(self, level: int, held: Iterable[Any]) -> None:
        while len(self._levels) <= level:
            self._levels.append([])
        path, file = self.spool.new_file("run")
        with file:
            self._runs.write(held, file, self.spool)
        self._levels[level].append(path)
        if len(self._levels[level]) == FAN_IN:  # keep the final merge's fan-in (and memory) bounded
            runs, self._levels[level] = self._levels[level], []
            self._add_run(level + 1, self._merged(runs))


class _Runs(Protocol):
    """How a KeyOrder's sorted runs are held: what sorts them, how they are written and read back."""

    key: Callable[[Any], Any] | None

    def write(self, held: Iterable[Any], file: IO[bytes], spool: Spool) -> None: ...

    def read(self, path: Path) -> Iterator[Any]: ...

    def unwrap(self, held: Iterator[Any]) -> Iterator[Any]: ...


class _RowRuns:
    """Rows, pickled a block at a time (they hold the values the driver will be given)."""

    def __init__(self, key: Callable[[Row], Any]) -> None:
        self.key: Callable[[Any], Any] | None = key

    def write(self, held: Iterable[Row], file: IO[bytes], spool: Spool) -> None:
        rows = iter(held)
        while block := list(islice(rows, BLOCK_ROWS)):
            spool.dump(block, file)

    def read(self, path: Path) -> Iterator[Row]:
        return _read_run(path)

    def unwrap(self, held: Iterator[Row]) -> Iterator[Row]:
        return held


class _LineRuns:
    """Lines behind their key and a tab (``_keyed``): they sort as bytes, and a run is a text file."""

    key: Callable[[Any], Any] | None = None  # bytes sort as they are

    def write(self, held: Iterable[bytes], file: IO[bytes], spool: Spool) -> None:
        spool.write_lines(held, file)

    def read(self, path: Path) -> Iterator[bytes]:
        with path.open("rb") as file:
            for line in file:
                yield line[:-1]  # every line was written with a newline, and holds no other
        path.unlink()

    def unwrap(self, held: Iterator[bytes]) -> Iterator[bytes]:
        for keyed in held:  # the key ends at the first tab
            yield keyed[keyed.index(b"\t") + 1:]


def _keyed(key: str, line: bytes) -> bytes:
    """``line`` behind its key, which holds no tab or newline (those are escaped: any order of the
    keys does, as long as it is one order)."""
    text = key.encode("utf-8", "surrogateescape")
    if b"\t" in text or b"\n" in text or b"\\" in text:
        text = text.replace(b"\\", b"\\\\").replace(b"\t", b"\\t").replace(b"\n", b"\\n")
    return text + b"\t" + line


def _read_run(path: Path) -> Iterator[Row]:
    with path.open("rb") as file:
        while True:
            try:
                block = pickle.load(file)
            except EOFError:
                break
            yield from block
    path.unlink()


def _text_key(at: int) -> Callable[[Row], Any]:
    """The row's key as text: an order that never fails, whatever the driver made of the value."""
    def key(row: Row) -> str:
        value = row[at]
        return value if type(value) is str else str(value)
    return key


def sorted_batches(order: KeyOrder) -> Iterator[tuple[list[Any], int]]:
    """The rows of ``order`` sorted, in batches as large as those added on average, each with its
    share of the input bytes (for progress); lines in batches of about ``LINE_BATCH_BYTES`` of input."""
    rows = order.sorted_rows()
    if order.writer is None:
        batch_rows = max(1, order.rows // max(1, order.batches))
    else:
        batch_rows = max(1, order.rows * LINE_BATCH_BYTES // max(1, order.bytes))
    done_rows = done_bytes = 0
    while batch := list(islice(rows, batch_rows)):
        done_rows += len(batch)
        share = order.bytes * done_rows // order.rows
        yield batch, share - done_bytes
        done_bytes = share


def text_key_position(table_name: str, columns: Sequence[str]) -> int | None:
    """Where in ``columns`` the table's primary key is, when it is one text column (Memoria's
    generated ids). Integer keys are left alone: they arrive in order already."""
    table = get_table(table_name)
    if table is None or len(table.primary_key) != 1:
        return None
    key = table.column(table.primary_key[0])
    if key is None or key.type is not ColumnType.TEXT or key.name not in columns:
        return None
    return list(columns).index(key.name)
