"""One side of a ``--sync`` as primary keys and row digests, partitioned by key on disk.

A scan digests every row (the canonical digest ``verify`` uses) and appends ``(keys, digests)``
chunks to one private file, each chunk holding one partition of one table (by a hash of the key
that every process computes alike). Comparing then holds one partition of one table in memory at a
time, whatever the table sizes, and needs no ordered reads (text keys sort differently on each
backend). Only the keys that differ are spooled on, for the writer.

The target is scanned in a worker process while this process scans the source: hashing is Python
work, and one process gets one core.
"""

from __future__ import annotations

import contextlib
import os
from bisect import bisect_right
from operator import itemgetter
import pickle
import sys
import zlib
from zlib import crc32
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Hashable, Iterator, Mapping, Protocol, Sequence, cast

import anyio

from memoria_stream.drivers import connect
from memoria_stream.drivers.base import Connection
from memoria_stream.errors import InternalError
from memoria_stream.model.catalog import get_table
from memoria_stream.private import create_private_file
from memoria_stream.transfer.digests import add_digests, row_digests
from memoria_stream.transfer.pipeline import fewer_collections
from memoria_stream.transfer.plans import export_plan

PARTITIONS = 64
BUFFERED_RECORDS = 20_000  # records held (over all partitions) before they go to disk
SCAN_ROWS = 5000
KEYS_PER_BATCH = 500  # keys per ``IN (…)``: under every backend's bind-parameter limit
Key = Any  # a primary key value: str or int


def partition_of(key: Key) -> int:
    """The partition of ``key``: the same in every process (``hash()`` of a str is not)."""
    if type(key) is int:
        return key % PARTITIONS
    return zlib.crc32(key.encode("utf-8", "surrogatepass")) % PARTITIONS


def grouped(keys: list[Key], *columns: list[Any]) -> Iterator[tuple[int, list[list[Any]]]]:
    """``columns`` (lists aligned with ``keys``) split by the keys' partitions, in partition order.

    One stable sort of row numbers and one C-level gather per column, rather than a Python step per
    key: a scan partitions every key it reads."""
    parts = _partitions(keys)
    if not parts:
        return
    order = sorted(range(len(parts)), key=parts.__getitem__)
    gather = itemgetter(*order)
    if len(order) == 1:
        parts, columns = [parts[0]], tuple([column[0]] for column in columns)
    else:
        parts, columns = list(gather(parts)), tuple(list(gather(column)) for column in columns)
    start = 0
    while start < len(parts):
        end = bisect_right(parts, parts[start], start)
        yield parts[start], [column[start:end] for column in columns]
        start = end


def _partitions(keys: list[Key]) -> list[int]:
    """``partition_of`` of every key, inlined for the usual batch of one key type."""
    kinds = set(map(type, keys))
    if kinds == {str}:
        return [crc32(k.encode("utf-8", "surrogatepass")) % PARTITIONS for k in keys]
    if kinds == {int}:
        return [k % PARTITIONS for k in keys]
    return list(map(partition_of, keys))


# --- chunk files --------------------------------------------------------------------------------

@dataclass
class ChunkFile:
    """Pickled chunks in one private file, found again by group (a table and a partition, or a kind)."""

    path: Path
    index: dict[Hashable, list[tuple[int, int]]] = field(default_factory=dict)

    def create(self) -> IO[bytes]:
        return os.fdopen(create_private_file(self.path), "wb")

    def open(self) -> IO[bytes]:
        return open(self.path, "rb")

    def write(self, file: IO[bytes], group: Hashable, chunk: Any) -> None:
        data = pickle.dumps(chunk, protocol=pickle.HIGHEST_PROTOCOL)
        self.index.setdefault(group, []).append((file.tell(), len(data)))
        file.write(data)

    def read(self, file: IO[bytes], group: Hashable) -> Iterator[Any]:
        for offset, length in self.index.get(group, ()):
            file.seek(offset)
            yield pickle.loads(file.read(length))


@dataclass
class Spool(ChunkFile):
    """One side: per table its row count and checksum; per table and partition its keys and digests."""

    rows: dict[str, int] = field(default_factory=dict)
    sums: dict[str, int] = field(default_factory=dict)

    def same_table(self, other: Spool, name: str) -> bool:
        return (self.rows.get(name, 0) == other.rows.get(name, 0)
                and self.sums.get(name, 0) == other.sums.get(name, 0))

    def partition(self, file: IO[bytes], name: str, part: int) -> Iterator[tuple[Key, bytes]]:
        for keys, digests in self.read(file, (name, part)):
            yield from zip(keys, digests)


class _PartitionedWriter:
    """Buffers records per partition and writes them as chunks, a bounded number at a time."""

    def __init__(self, spool: Spool, file: IO[bytes]) -> None:
        self.spool, self.file = spool, file
        self.buffers: dict[tuple[str, int], tuple[list[Key], list[bytes]]] = {}
        self.buffered = 0

    def add(self, name: str, keys: list[Key], digests: list[bytes]) -> None:
        buffers = self.buffers
        for part, (some_keys, some_digests) in grouped(keys, keys, digests):
            buffer = buffers.get((name, part)) or buffers.setdefault((name, part), ([], []))
            buffer[0].extend(some_keys)
            buffer[1].extend(some_digests)
        self.buffered += len(keys)
        if self.buffered >= BUFFERED_RECORDS:
            self.flush()

    def flush(self) -> None:
        for group, chunk in self.buffers.items():
            self.spool.write(self.file, group, chunk)
        self.buffers.clear()
        self.buffered = 0


# --- scanning -----------------------------------------------------------------------------------

@dataclass
class Scan:
    """What to read of one side, and where it went: fingerprints of ``printed`` tables (every row's
    key and ``Connection.fingerprints``), canonical digests of ``digested`` ones (those without a
    memory to compare fingerprints against). Pickled to and from the worker process."""

    printed: list[str]
    digested: list[str]
    prints: Spool
    digests: Spool


async def scan(conn: Connection, request: Scan) -> None:
    """Fill ``request``'s spools from ``conn`` (inside its snapshot)."""
    with request.prints.create() as file:
        writer = _PartitionedWriter(request.prints, file)
        for name in request.printed:
            await _scan_prints(conn, name, request.prints, writer)
        writer.flush()
    with request.digests.create() as file:
        writer = _PartitionedWriter(request.digests, file)
        for name in request.digested:
            await _scan_digests(conn, name, request.digests, writer)
        writer.flush()


async def _scan_prints(conn: Connection, name: str, spool: Spool, writer: _PartitionedWriter) -> None:
    live = await conn.columns(name)
    key = live[_key_position(name, [c.name for c in live])].name
    rows = 0
    async for keys, prints in conn.fingerprints(name, key, live, batch_rows=SCAN_ROWS):
        writer.add(name, _keys(name, keys), prints)
        rows += len(keys)
    spool.rows[name] = rows


async def _scan_digests(conn: Connection, name: str, spool: Spool, writer: _PartitionedWriter) -> None:
    plan = export_plan(name, await conn.columns(name), conn.capabilities)
    columns = plan.layout.columns
    key_at = _key_position(name, columns)
    rows, checksum = 0, 0
    async for raw in conn.read(name, columns, batch_rows=SCAN_ROWS):
        batch = plan.decode(raw)
        digests = row_digests(columns, batch)
        writer.add(name, _keys(name, [row[key_at] for row in batch]), digests)
        rows, checksum = rows + len(batch), add_digests(checksum, digests)
    spool.rows[name], spool.sums[name] = rows, checksum


async def scan_in_worker(url: str, request: Scan) -> Scan:
    """``scan`` of ``url`` in a snapshot of its own, in a worker process; returns the filled request.

    A plain ``python -c`` child rather than multiprocessing or ``anyio.to_process``: those re-run the
    parent's main module in the worker, which may be anyone's script. Cancelled, the child is killed."""
    pickled = pickle.dumps((url, request), protocol=pickle.HIGHEST_PROTOCOL)
    done = await anyio.run_process([sys.executable, "-c", _WORKER], input=pickled, check=False, env=_worker_env())
    try:
        outcome = pickle.loads(done.stdout)
    except Exception:  # the child died before it could answer
        tail = done.stderr.decode(errors="replace")[-2000:]
        raise InternalError(f"the --sync worker process failed (exit {done.returncode}): {tail}") from None
    if isinstance(outcome, BaseException):
        raise outcome
    return cast(Scan, outcome)


_WORKER = "from memoria_stream.transfer.keyspool import worker_main; worker_main()"


def _worker_env() -> dict[str, str]:
    """The parent's environment, with this package importable however the parent found it."""
    root = str(Path(__file__).resolve().parents[2])
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}


def worker_main() -> None:
    """The worker process: a pickled request on stdin, the filled request (or the error) on stdout."""
    url, request = pickle.load(sys.stdin.buffer)

    async def scan_snapshot() -> None:
        async with connect(url) as conn, conn.snapshot():
            await scan(conn, request)

    outcome: Any = request
    try:
        with fewer_collections():
            anyio.run(scan_snapshot)
    except Exception as exc:  # handed to the parent, which raises it
        outcome = exc
    try:
        answer = pickle.dumps(outcome, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # an error that does not pickle: its text, then
        answer = pickle.dumps(InternalError(f"{type(outcome).__name__}: {outcome}"))
    sys.stdout.buffer.write(answer)


def _key_position(name: str, columns: Sequence[str]) -> int:
    table = get_table(name)
    if table is None or len(table.primary_key) != 1 or table.primary_key[0] not in columns:
        raise InternalError(f"{name}: --sync needs the table's one primary key column")
    return columns.index(table.primary_key[0])


def _keys(name: str, keys: list[Key]) -> list[Key]:
    """``keys`` as they are, once checked to be text or integers (what compares exactly in Python
    and binds as itself in ``WHERE key IN (…)``)."""
    if set(map(type, keys)) <= {str, int}:
        return keys
    odd = next((k for k in keys if type(k) is not str and type(k) is not int), None)
    if odd is not None:
        raise InternalError(f"{name}: --sync cannot use primary key {odd!r:.60}")
    return keys


# --- comparing ----------------------------------------------------------------------------------

# Keys to delete (deleted or updated), rows to write (inserted or updated), and keys whose rows moved
# on either side since the memory was taken, to be compared in full (``SUSPECT``: keys and prints).
REMOVE, ARRIVE, SUSPECT = "remove", "arrive", "suspect"


@dataclass
class Counts:
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    suspect: int = 0


class Changes(ChunkFile):
    """The keys that differ, per table and kind, in batches of ``KEYS_PER_BATCH``."""

    def append(self) -> IO[bytes]:
        return open(self.path, "ab")


@dataclass
class Side:
    """One side's scan results, opened for reading partitions."""

    scan: Scan
    prints: IO[bytes]
    digests: IO[bytes]

    def prints_of(self, name: str, part: int) -> dict[Key, bytes]:
        return dict(self.scan.prints.partition(self.prints, name, part))

    def digests_of(self, name: str, part: int) -> dict[Key, bytes]:
        return dict(self.scan.digests.partition(self.digests, name, part))


class Keeper(Protocol):
    """Where the keys found equal go (the next memory of their table)."""

    def add_chunk(self, part: int, chunk: tuple[list[Key], list[bytes], list[bytes]]) -> None: ...


class Remembering(Protocol):
    """A table's remembered (source, target) prints per key (``sync_memory.TableMemory``)."""

    def open(self) -> IO[bytes]: ...

    def partition(self, file: IO[bytes], part: int) -> dict[Key, tuple[bytes, bytes]]: ...


def compare(source: Scan, target: Scan, names: Sequence[str], memories: Mapping[str, Remembering],
            keepers: Mapping[str, Keeper], changes: Changes) -> dict[str, Counts]:
    """Classify every key of ``names`` into ``changes``, a partition at a time so that one partition
    of one table is in memory at a time. Where a table has a memory, a key whose two prints are the
    remembered ones is equal; others are ``SUSPECT``. Without one, canonical digests decide."""
    counts: dict[str, Counts] = {}
    with contextlib.ExitStack() as stack:
        ours = Side(source, stack.enter_context(source.prints.open()), stack.enter_context(source.digests.open()))
        theirs = Side(target, stack.enter_context(target.prints.open()), stack.enter_context(target.digests.open()))
        out = stack.enter_context(changes.create())
        for name in names:
            memory = memories.get(name)
            remembered = stack.enter_context(memory.open()) if memory is not None else None
            classifier = _Classifier(changes, out, name, keepers.get(name))
            for part in range(PARTITIONS):
                known = memory.partition(remembered, part) if memory is not None else None
                classifier.partition(part, ours, theirs, known)
            counts[name] = classifier.finish()
    return counts


class _Classifier:
    """The keys of one table, compared a partition at a time; differing keys batched into ``changes``."""

    def __init__(self, changes: Changes, file: IO[bytes], name: str, keeper: Keeper | None) -> None:
        self.changes, self.file, self.name, self.keeper = changes, file, name, keeper
        self.counts = Counts()
        self.batches: dict[str, list[Any]] = {REMOVE: [], ARRIVE: [], SUSPECT: []}

    def partition(self, part: int, ours: Side, theirs: Side,
                  known: dict[Key, tuple[bytes, bytes]] | None) -> None:
        mine, old = ours.prints_of(self.name, part), theirs.prints_of(self.name, part)
        if known is None:
            my_digests, old_digests = ours.digests_of(self.name, part), theirs.digests_of(self.name, part)
        kept: tuple[list[Key], list[bytes], list[bytes]] = ([], [], [])
        for key, mark in mine.items():
            other = old.pop(key, None)
            if other is None:
                self.counts.inserted += 1
                self._add(ARRIVE, key)
            elif known is not None and known.get(key) != (mark, other):
                self.counts.suspect += 1
                self._add(SUSPECT, (key, mark, other))
            elif known is not None or my_digests.get(key) == old_digests.get(key):
                kept[0].append(key)
                kept[1].append(mark)
                kept[2].append(other)
            else:
                self.counts.updated += 1
                self._add(REMOVE, key)
                self._add(ARRIVE, key)
        self.counts.deleted += len(old)
        for key in old:
            self._add(REMOVE, key)
        if self.keeper is not None:
            self.keeper.add_chunk(part, kept)

    def finish(self) -> Counts:
        for kind, keys in self.batches.items():
            if keys:
                self.changes.write(self.file, (self.name, kind), keys)
        return self.counts

    def _add(self, kind: str, entry: Any) -> None:
        batch = self.batches[kind]
        batch.append(entry)
        if len(batch) == KEYS_PER_BATCH:
            self.changes.write(self.file, (self.name, kind), batch)
            self.batches[kind] = []
