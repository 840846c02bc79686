"""One side of a ``--sync`` as primary keys and row fingerprints or digests, partitioned by key on disk.

A scan reads every row's key with its fingerprint (``Connection.fingerprints``: cheap, and only
comparable with earlier fingerprints of the same database — see ``sync_memory.py``) or, for tables
without a memory, its canonical digest (the one ``verify`` uses), and appends ``(keys, values)``
chunks to a private file, each chunk holding one partition of one table (by a hash of the key that
every process computes alike). Comparing then holds one partition of one table in memory at a time,
whatever the table sizes, and needs no ordered reads (text keys sort differently on each backend).
Only the keys that differ are spooled on, for the writer.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import zlib
from bisect import bisect_right
from itertools import compress
from dataclasses import dataclass, field
from operator import and_, eq, itemgetter, not_
from pathlib import Path
from typing import IO, Any, Awaitable, Callable, Hashable, Iterator, Mapping, Protocol, Sequence
from zlib import crc32

from memoria_stream.drivers.base import AS_REMEMBERED, Connection, LiveColumn, StorageChanges
from memoria_stream.errors import InternalError
from memoria_stream.model.catalog import get_table
from memoria_stream.private import create_private_file
from memoria_stream.transfer.digests import row_digests
from memoria_stream.transfer.pipeline import channel, fewer_collections, run_stages
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


def summary_of(keys: Sequence[Key], prints: Sequence[bytes]) -> tuple[int, int]:
    """(count, sum) of the prints' first 8 bytes as signed 64-bit numbers: what a server sums over a
    table without sending a row (``Connection.fingerprint_summary``; a print covers its key)."""
    return len(keys), sum(map(_head, prints))


def _head(print_: bytes) -> int:
    return int.from_bytes(print_[:8], "big", signed=True)


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
    end: int = field(default=0, kw_only=True)  # where the next chunk goes (a buffered tell() asks the kernel)

    def create(self) -> IO[bytes]:
        self.end = 0
        return os.fdopen(create_private_file(self.path), "wb")

    def open(self) -> IO[bytes]:
        return open(self.path, "rb")

    def write(self, file: IO[bytes], group: Hashable, chunk: Any) -> None:
        self.write_pickled(file, group, pickle.dumps(chunk, protocol=pickle.HIGHEST_PROTOCOL))

    def read(self, file: IO[bytes], group: Hashable) -> Iterator[Any]:
        return map(pickle.loads, self.pickled(file, group))

    def pickled(self, file: IO[bytes], group: Hashable) -> list[bytes]:
        """The chunks of ``group`` as they are stored (to carry them into another file unopened)."""
        found = []
        for offset, length in self.index.get(group, ()):
            file.seek(offset)
            found.append(file.read(length))
        return found

    def write_pickled(self, file: IO[bytes], group: Hashable, data: bytes) -> None:
        """Append ``data`` to ``file``: this chunk file, opened by ``create`` or ``append``."""
        self.index.setdefault(group, []).append((self.end, len(data)))
        file.write(data)
        self.end += len(data)


@dataclass
class Spool(ChunkFile):
    """One side's keys and prints (or digests): per table its row count; per table and partition chunks."""

    rows: dict[str, int] = field(default_factory=dict)

    def partition(self, file: IO[bytes], name: str, part: int) -> Iterator[tuple[Key, bytes]]:
        for keys, digests in self.read(file, (name, part)):
            yield from zip(keys, digests)

    def columns(self, file: IO[bytes], name: str, part: int, into: tuple[list[Key], list[bytes]]) -> None:
        """Append one partition's keys and values to the two lists of ``into``."""
        for keys, values in self.read(file, (name, part)):
            into[0].extend(keys)
            into[1].extend(values)


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
    share: tuple[int, int] = (0, 1)  # (i, n): the i-th of n shares of the printed tables' rows…
    shared: list[str] | None = None  # …of these (None: all); the others are read whole
    # Printed tables whose memory knows the source's storage (``Connection.storage_changes``): every
    # key is listed with ``AS_REMEMBERED`` first, then the rows of storage that changed are read and
    # listed again with their prints (the later entry of a key counts: ``_as_read``).
    by_storage: list[str] = field(default_factory=list)

    def share_of(self, name: str) -> tuple[int, int]:
        return self.share if self.shared is None or name in self.shared else (0, 1)


StorageLookup = Callable[[], Awaitable[Mapping[str, StorageChanges]]]


async def scan(conn: Connection, request: Scan, storage: StorageLookup | None = None) -> None:
    """Fill ``request``'s spools from ``conn`` (inside its snapshot). ``storage`` tells, once awaited,
    where the ``by_storage`` tables changed (a table it does not name is read whole); their keys are
    listed meanwhile."""
    with request.prints.create() as file:
        writer = _PartitionedWriter(request.prints, file)
        for name in request.by_storage:
            await _scan_keys(conn, name, request.prints, writer)
        changes = await storage() if storage is not None and request.by_storage else {}
        for name in request.by_storage:
            await _scan_changed(conn, name, request.prints, writer, changes.get(name))
        for name in request.printed:
            if name not in request.by_storage:
                await _scan_prints(conn, name, request, writer)
        writer.flush()
    with request.digests.create() as file:
        writer = _PartitionedWriter(request.digests, file)
        for name in request.digested:
            await _scan_digests(conn, name, request.digests, writer)
        writer.flush()


async def _scan_keys(conn: Connection, name: str, spool: Spool, writer: _PartitionedWriter) -> None:
    """Every key of ``name`` with ``AS_REMEMBERED``: what its row was, unless its storage changed."""
    key = _key_column(name, await conn.columns(name))
    rows = 0
    async for batch in conn.read(name, [key.name], batch_rows=SCAN_ROWS):
        keys = _keys(name, [row[0] for row in batch])
        writer.add(name, keys, [AS_REMEMBERED] * len(keys))
        rows += len(keys)
    spool.rows[name] = rows


async def _scan_changed(conn: Connection, name: str, spool: Spool, writer: _PartitionedWriter,
                        changes: StorageChanges | None) -> None:
    """The fingerprints of the rows of ``name`` in storage that changed (all rows: ``changes`` None)."""
    live = await conn.columns(name)
    if changes is not None and changes.rows != spool.rows[name]:
        changes = None  # storage that does not hold the table's rows is never trusted: every row is read
    async for keys, prints in conn.fingerprints(name, _key_column(name, live).name, live, batch_rows=SCAN_ROWS,
                                                changes=changes):
        writer.add(name, _keys(name, keys), prints)


async def _scan_prints(conn: Connection, name: str, request: Scan, writer: _PartitionedWriter) -> None:
    live = await conn.columns(name)
    key = _key_column(name, live).name
    send, receive = channel(1)
    rows = 0

    async def read() -> None:  # asks for the next batch before this one is spooled: the server works meanwhile
        async with send:
            async for batch in conn.fingerprints(name, key, live, batch_rows=SCAN_ROWS, share=request.share_of(name)):
                await send.send(batch)

    async def spool_them() -> None:
        nonlocal rows
        async with receive:
            async for keys, prints in receive:
                writer.add(name, _keys(name, keys), prints)
                rows += len(keys)

    await run_stages(read, spool_them)
    request.prints.rows[name] = rows


def _key_column(name: str, live: Sequence[LiveColumn]) -> LiveColumn:
    return live[_key_position(name, [c.name for c in live])]


async def _scan_digests(conn: Connection, name: str, spool: Spool, writer: _PartitionedWriter) -> None:
    plan = export_plan(name, await conn.columns(name), conn.capabilities)
    columns = plan.layout.columns
    key_at = _key_position(name, columns)
    rows = 0
    async for raw in conn.read(name, columns, batch_rows=SCAN_ROWS):
        batch = plan.decode(raw)
        writer.add(name, _keys(name, [row[key_at] for row in batch]), row_digests(columns, batch))
        rows += len(batch)
    spool.rows[name] = rows


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
# ``READY``: rows to write that the comparison already read from the source (keys, rows, source prints).
REMOVE, ARRIVE, SUSPECT, READY = "remove", "arrive", "suspect", "ready"
UNREAD = b"\x00unread"  # a print for a row not read, whose remembered print is missing: never equal to one


@dataclass
class Counts:
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    suspect: int = 0


class Changes(ChunkFile):
    """The keys that differ, per table and kind, in batches of ``KEYS_PER_BATCH``."""

    def append(self) -> IO[bytes]:
        self.end = self.path.stat().st_size
        return open(self.path, "ab")

    def arrived(self, file: IO[bytes], name: str) -> Iterator[list[Key]]:
        """The keys of every row of ``name`` to be written (``ARRIVE`` and ``READY``), in batches."""
        yield from self.read(file, (name, ARRIVE))
        for keys, _, _ in self.read(file, (name, READY)):
            yield keys

    def replace(self, other: Changes, names: Sequence[str]) -> None:
        """Drop what this file says of tables ``names`` and take what ``other`` says of them instead."""
        self.index = {group: at for group, at in self.index.items() if group[0] not in names}  # type: ignore[index]
        with other.open() as source, self.append() as out:
            for group in list(other.index):
                for chunk in other.read(source, group):
                    self.write(out, group, chunk)


class Side:
    """One side's scans (the source's may be shared out between processes), opened for reading."""

    def __init__(self, stack: contextlib.ExitStack, scans: Sequence[Scan]) -> None:
        self.parts = [(scan, stack.enter_context(scan.prints.open()), stack.enter_context(scan.digests.open()))
                      for scan in scans]

    def prints_of(self, name: str, part: int) -> dict[Key, bytes]:
        found: dict[Key, bytes] = {}
        for scan, prints, _ in self.parts:
            found.update(scan.prints.partition(prints, name, part))
        return found

    def prints_in_columns(self, name: str, part: int) -> tuple[list[Key], list[bytes]]:
        found: tuple[list[Key], list[bytes]] = ([], [])
        for scan, prints, _ in self.parts:
            scan.prints.columns(prints, name, part, found)
        return found

    def digests_of(self, name: str, part: int) -> dict[Key, bytes]:
        found: dict[Key, bytes] = {}
        for scan, _, digests in self.parts:
            found.update(scan.digests.partition(digests, name, part))
        return found


class Keeper(Protocol):
    """Where the keys found equal go (the next memory of their table)."""

    def add_chunk(self, part: int, chunk: tuple[list[Key], list[bytes], list[bytes]],
                  summary: tuple[int, int] | None = None) -> None: ...

    def add_pickled(self, part: int, chunks: list[bytes], summary: tuple[int, int]) -> None: ...


class Remembering(Protocol):
    """A table's remembered (source, target) prints per key (``sync_memory.TableMemory``)."""

    def open(self) -> IO[bytes]: ...

    # The target was found to hold exactly the remembered (key, print) pairs (by its summary): its
    # prints are the remembered ones, not read.
    target_unchanged: bool

    def partition(self, file: IO[bytes], part: int) -> Remembered: ...

    def pickled(self, file: IO[bytes], part: int) -> list[bytes]: ...

    def summary(self, part: int) -> tuple[int, int]:
        """``summary_of`` the partition's keys and remembered target prints."""
        ...


Remembered = tuple[list[Key], list[bytes], list[bytes]]  # keys, source prints, target prints


def compare(source: Sequence[Scan], target: Scan, names: Sequence[str], memories: Mapping[str, Remembering],
            keepers: Mapping[str, Keeper], changes: Changes) -> dict[str, Counts]:
    """Classify every key of ``names`` into ``changes``, a partition at a time so that one partition
    of one table is in memory at a time. Where a table has a memory, a key whose two prints are the
    remembered ones is equal; others are ``SUSPECT``. Without one, canonical digests decide."""
    counts: dict[str, Counts] = {}
    with contextlib.ExitStack() as stack, fewer_collections():
        ours, theirs = Side(stack, source), Side(stack, [target])
        out = stack.enter_context(changes.create())
        for name in names:
            memory = memories.get(name)
            remembered = stack.enter_context(memory.open()) if memory is not None else None
            keeper = keepers.get(name)
            classifier = _Classifier(changes, out, name, keeper)
            for part in range(PARTITIONS):
                if memory is None or remembered is None:
                    classifier.by_digests(part, ours, theirs)
                    continue
                known, summary = memory.partition(remembered, part), memory.summary(part)
                ours_now = _as_read(ours.prints_in_columns(name, part), known)
                theirs_now = (known[0], known[2]) if memory.target_unchanged else theirs.prints_in_columns(name, part)
                if classifier.by_memory(part, ours_now, theirs_now, known, summary) \
                        and keeper is not None:
                    keeper.add_pickled(part, memory.pickled(remembered, part), summary)  # as it is
            counts[name] = classifier.finish()
    return counts


def joined(source: Sequence[Scan], target: Scan, name: str) -> Iterator[tuple[int, Remembered]]:
    """Per partition, the keys of ``name`` both sides hold, with their prints on each side: the
    memory of a table just copied whole (a source row not read has no print to remember: ``UNREAD``)."""
    with contextlib.ExitStack() as stack:
        ours, theirs = Side(stack, source), Side(stack, [target])
        for part in range(PARTITIONS):
            mine, other = ours.prints_of(name, part), theirs.prints_of(name, part)
            keys = [key for key in mine if key in other]
            yield part, (keys, [mine[key] or UNREAD for key in keys], [other[key] for key in keys])


def _as_read(now: tuple[list[Key], list[bytes]], known: Remembered) -> tuple[list[Key], list[bytes]]:
    """``now`` with each key once (the later entry counts: a row read again because its storage
    changed), an ``AS_REMEMBERED`` print replaced by the remembered one (``UNREAD`` for a key the
    memory lacks: compared in full, then)."""
    keys, prints = now
    if AS_REMEMBERED not in prints:
        return now
    latest = dict(zip(keys, prints))
    if len(latest) != len(keys):
        keys, prints = list(latest), list(latest.values())
    if keys == known[0]:  # the usual case: both in scan order
        return keys, [p or r for p, r in zip(prints, known[1])]
    remembered = dict(zip(known[0], known[1]))
    return keys, [p or remembered.get(k, UNREAD) for k, p in zip(keys, prints)]


def _as_remembered(now: tuple[list[Key], list[bytes]], keys: list[Key], prints: list[bytes]) -> bool:
    """Are the keys and prints read ``now`` exactly the remembered ones? Most often they come in the
    remembered order (both are in scan order): two list comparisons in C, no dict built."""
    now_keys, now_prints = now
    if len(now_keys) != len(keys):
        return False
    if now_keys == keys:
        return now_prints == prints
    found = dict(zip(now_keys, now_prints))  # (keys are unique: equal lengths, so the same key sets if all found)
    return list(map(found.get, keys)) == prints


class _Classifier:
    """The keys of one table, compared a partition at a time; differing keys batched into ``changes``."""

    def __init__(self, changes: Changes, file: IO[bytes], name: str, keeper: Keeper | None) -> None:
        self.changes, self.file, self.name, self.keeper = changes, file, name, keeper
        self.counts = Counts()
        self.batches: dict[str, list[Any]] = {REMOVE: [], ARRIVE: [], SUSPECT: []}

    def by_digests(self, part: int, ours: Side, theirs: Side) -> None:
        """Without a memory: a key on both sides is equal when its canonical digests are."""
        mine, old = ours.prints_of(self.name, part), theirs.prints_of(self.name, part)
        my_digests, old_digests = ours.digests_of(self.name, part), theirs.digests_of(self.name, part)
        kept: Remembered = ([], [], [])
        for key, mark in mine.items():
            other = old.pop(key, None)
            if other is None:
                self.counts.inserted += 1
                self._add(ARRIVE, key)
            elif my_digests.get(key) == old_digests.get(key):
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
        self._keep(part, kept)

    def by_memory(self, part: int, ours_now: tuple[list[Key], list[bytes]], theirs_now: tuple[list[Key], list[bytes]],
                  known: Remembered, summary: tuple[int, int]) -> bool:
        """With a memory: a key whose prints on both sides are the remembered ones is unchanged on
        both sides, so still equal. The dicts compare in C; only keys that appeared, went or moved
        on either side get a step in Python. True where the whole partition is as remembered (then
        nothing is kept here: the caller carries the remembered partition over as it is)."""
        keys, remembered_ours, remembered_theirs = known
        if _as_remembered(ours_now, keys, remembered_ours) and _as_remembered(theirs_now, keys, remembered_theirs):
            return True
        now_ours, was = dict(zip(*ours_now)), dict.fromkeys(keys)
        # Moved: remembered keys whose print is another now (or none: gone); appeared: keys not remembered.
        untouched = list(map(eq, map(now_ours.get, keys), remembered_ours))
        appeared = now_ours.keys() - was.keys()
        now_theirs: dict[Key, bytes] | None = None
        if theirs_now[1] is not remembered_theirs:  # read, not taken as remembered (``target_unchanged``)
            now_theirs = dict(zip(*theirs_now))
            untouched = list(map(and_, untouched, map(eq, map(now_theirs.get, keys), remembered_theirs)))
            appeared |= now_theirs.keys() - was.keys()
        dropped = list(map(not_, untouched))
        moved, moved_theirs = list(compress(keys, dropped)), list(compress(remembered_theirs, dropped))
        if now_theirs is None:
            now_theirs = dict(zip(moved, moved_theirs))
        touched = set(moved) | appeared
        gone = summary_of(moved, moved_theirs)
        self._keep(part, tuple(list(compress(column, untouched)) for column in known),
                   (summary[0] - gone[0], summary[1] - gone[1]))
        for key in touched:
            self._classify_touched(key, now_ours.get(key), now_theirs.get(key))
        return False

    def _classify_touched(self, key: Key, mine: bytes | None, other: bytes | None) -> None:
        if mine is None and other is None:
            return  # gone from both sides
        if other is None:
            self.counts.inserted += 1
            self._add(ARRIVE, key)
        elif mine is None:
            self.counts.deleted += 1
            self._add(REMOVE, key)
        else:
            self.counts.suspect += 1
            self._add(SUSPECT, (key, mine, other))

    def _keep(self, part: int, kept: Any, summary: tuple[int, int] | None = None) -> None:
        if self.keeper is not None:
            self.keeper.add_chunk(part, kept, summary)

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
