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
"""

from __future__ import annotations

import heapq
import operator
import pickle
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from memoria_stream.model.catalog import get_table
from memoria_stream.model.types import ColumnType, Row
from memoria_stream.transfer.spool import Spool

RUN_BYTES = 8 * 1024 * 1024  # input bytes sorted in memory at a time
BLOCK_ROWS = 128  # rows per pickled block: the merge holds one block of each run
FAN_IN = 32  # runs merged at once; more of one size are first merged into one larger run


class KeyOrder:
    """Collects a table's rows (``add``) and gives them back sorted by the key at ``key_at``."""

    def __init__(self, spool: Spool, key_at: int, run_bytes: int = RUN_BYTES) -> None:
        self.spool, self.run_bytes = spool, run_bytes
        self._key = _text_key(key_at)
        self._pending: list[Row] = []
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
        self._pending.extend(rows)
        self._pending_bytes += size
        self.rows += len(rows)
        self.bytes += size
        self.batches += 1
        if self._pending_bytes >= self.run_bytes:
            self._spill()

    def sorted_rows(self) -> Iterator[Row]:
        """Every row added, in key order; the spooled runs are removed as they are read."""
        if not self._levels:
            rows, self._pending = self._pending, []
            rows.sort(key=self._key)
            return iter(rows)
        self._spill()
        runs = [path for level in self._levels for path in level]
        self._levels = []
        return heapq.merge(*map(_read_run, runs), key=self._key)

    def _spill(self) -> None:
        if not self._pending:
            return
        self._pending.sort(key=self._key)
        self._add_run(0, self._pending)
        self._pending, self._pending_bytes = [], 0

    def _add_run(self, level: int, rows: Iterable[Row]) -> None:
        while len(self._levels) <= level:
            self._levels.append([])
        self._levels[level].append(self._write_run(rows))
        if len(self._levels[level]) == FAN_IN:  # keep the final merge's fan-in (and memory) bounded
            runs, self._levels[level] = self._levels[level], []
            self._add_run(level + 1, heapq.merge(*map(_read_run, runs), key=self._key))

    def _write_run(self, rows: Iterable[Row]) -> Path:
        path, file = self.spool.new_file("run")
        with file:
            rows = iter(rows)
            while block := list(islice(rows, BLOCK_ROWS)):
                self.spool.dump(block, file)
        return path


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


def sorted_batches(order: KeyOrder) -> Iterator[tuple[list[Row], int]]:
    """The rows of ``order`` sorted, in batches as large as those added on average, each with its
    share of the input bytes (for progress)."""
    rows = order.sorted_rows()
    batch_rows = max(1, order.rows // max(1, order.batches))
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
