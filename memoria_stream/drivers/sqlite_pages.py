"""Which rows of a SQLite file may have changed since an earlier look, found without reading a row.

A table's rows live in the leaf pages of its b-tree, a row too long for its leaf going on in a chain
of overflow pages. A leaf whose bytes, with its chains' bytes, are as they were holds the very rows,
byte for byte, that it held then: only the rows of the other leaves need to be read and hashed. In
rollback-journal mode a reader inside its snapshot holds the shared lock, so no writer changes the
file meanwhile and its pages can be read beside SQLite (in WAL mode the newest pages are in the
log: not done there). The format is SQLite's documented file format (sqlite.org/fileformat2.html).

This runs in a child process (``python -c``, a pickle in and out): closing any descriptor of a file
drops every POSIX lock the closing process holds on it — SQLite's own, the snapshot's shared lock
among them — so the process holding the snapshot must never open the database file itself.
"""

from __future__ import annotations

import os
import pickle
import struct
import sys
from array import array
from dataclasses import dataclass, field
from typing import Iterator

import anyio
import xxhash

from memoria_stream.children import child_env
from memoria_stream.errors import InternalError

_MAGIC = b"SQLite format 3\x00"
_TABLE_LEAF, _TABLE_INTERIOR = 13, 5
_CHUNK_PAGES = 1024  # pages read at once on the pass over the leaves


class Unreadable(Exception):
    """The file cannot be read this way (WAL mode, an unexpected page): the caller reads the rows."""


@dataclass
class Leaves:
    """One table's leaf pages at one look, in page order: each one's digest (XXH3-64 of its bytes and
    its overflow pages' bytes, in chain order) and, for those that have any, its overflow pages.
    Arrays: a few bytes per leaf in memory and on disk, whatever the rows hold."""

    pages: array[int] = field(default_factory=lambda: array("I"))
    digests: array[int] = field(default_factory=lambda: array("Q"))
    chains: dict[int, tuple[int, ...]] = field(default_factory=dict)


@dataclass
class LeafRequest:
    """One table: its b-tree's root page, the leaves remembered from the last look (None: none), and
    whether the rowids on changed leaves are wanted."""

    root: int
    remembered: Leaves | None
    rowids: bool


@dataclass
class LeafReport:
    """One table now: its leaves, the number of rows (cells) on them, and the rowids on the leaves
    that are not as remembered (where asked)."""

    units: Leaves = field(default_factory=Leaves)
    rows: int = 0
    changed_rowids: list[int] = field(default_factory=list)
    changed_leaves: int = 0


class _File:
    def __init__(self, fd: int) -> None:
        self.fd = fd
        header = os.pread(fd, 100, 0)
        if len(header) < 100 or header[:16] != _MAGIC:
            raise Unreadable("not a SQLite database file")
        if header[18] != 1 or header[19] != 1:
            raise Unreadable("not in rollback-journal mode")
        size = struct.unpack_from(">H", header, 16)[0]
        self.page_size = 65536 if size == 1 else size
        self.usable = self.page_size - header[20]
        self.pages = os.fstat(fd).st_size // self.page_size

    def page(self, number: int) -> bytes:
        if not 1 <= number <= self.pages:
            raise Unreadable(f"page {number} is outside the file")
        return os.pread(self.fd, self.page_size, (number - 1) * self.page_size)

    def chunks(self, numbers: list[int]) -> Iterator[tuple[int, memoryview]]:
        """(number, bytes) of the sorted page ``numbers``, read a run of pages at a time."""
        at = 0
        while at < len(numbers):
            first = numbers[at]
            data = memoryview(os.pread(self.fd, self.page_size * _CHUNK_PAGES, (first - 1) * self.page_size))
            while at < len(numbers) and numbers[at] < first + _CHUNK_PAGES:
                start = (numbers[at] - first) * self.page_size
                if start + self.page_size > len(data):
                    raise Unreadable(f"page {numbers[at]} is outside the file")
                yield numbers[at], data[start:start + self.page_size]
                at += 1


def leaf_reports(path: str, requests: dict[str, LeafRequest]) -> dict[str, LeafReport]:
    """Every requested table's ``LeafReport`` (raises ``Unreadable``)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        file = _File(fd)
        return {name: _report(file, request) for name, request in requests.items()}
    finally:
        os.close(fd)


def _report(file: _File, request: LeafRequest) -> LeafReport:
    report, remembered = LeafReport(), request.remembered or Leaves()
    leaves = report.units
    leaves.pages.extend(sorted(_leaves(file, request.root)))
    at = 0  # both in page order: the remembered leaves are walked alongside, not looked up in a dict
    for number, page in file.chunks(leaves.pages.tolist()):
        header = _header(number)
        if page[header] != _TABLE_LEAF:
            raise Unreadable(f"page {number} is not a table b-tree leaf")
        report.rows += struct.unpack_from(">H", page, header + 3)[0]
        while at < len(remembered.pages) and remembered.pages[at] < number:
            at += 1
        known = at < len(remembered.pages) and remembered.pages[at] == number
        was, chain = (remembered.digests[at], remembered.chains.get(number, ())) if known else (None, ())
        digest = _digest(file, page, chain) if was is not None else None
        if digest is None or digest != was:
            rowids, chain = _cells(file, bytes(page), header)
            digest = _digest(file, page, chain)
            report.changed_leaves += 1
            if request.rowids:
                report.changed_rowids.extend(rowids)
        leaves.digests.append(digest)
        if chain:
            leaves.chains[number] = chain
    return report


def _leaves(file: _File, root: int) -> list[int]:
    """The leaf pages of the table b-tree at ``root``, a level at a time: every leaf of a b-tree is
    at the same depth, so only interior pages are read here (the leaves once, on the pass)."""
    level, seen = [root], 0
    while True:
        first = file.page(level[0])
        if first[_header(level[0])] == _TABLE_LEAF:
            return level
        below: list[int] = []
        for number in level:
            page = first if number == level[0] else file.page(number)
            at = _header(number)
            if page[at] != _TABLE_INTERIOR:
                raise Unreadable(f"page {number} is not a table b-tree page")
            count = struct.unpack_from(">H", page, at + 3)[0]
            below.extend(struct.unpack_from(">I", page, p)[0] for p in struct.unpack_from(f">{count}H", page, at + 12))
            below.append(struct.unpack_from(">I", page, at + 8)[0])
        seen += len(below)
        if seen > file.pages:
            raise Unreadable("a b-tree holds more pages than the file")
        level = below


def _header(number: int) -> int:
    return 100 if number == 1 else 0  # page 1 starts with the file header


def _digest(file: _File, page: memoryview | bytes, chain: tuple[int, ...]) -> int:
    if not chain:
        return xxhash.xxh3_64_intdigest(page)
    state = xxhash.xxh3_64(page)
    for number in chain:
        state.update(file.page(number))
    return state.intdigest()


def _cells(file: _File, page: bytes, header: int) -> tuple[list[int], tuple[int, ...]]:
    """The rowids on a table leaf, and the overflow pages of its cells in order."""
    count = struct.unpack_from(">H", page, header + 3)[0]
    usable = file.usable
    most_local = usable - 35
    least_local = (usable - 12) * 32 // 255 - 23
    rowids, chains = [], []
    for at in struct.unpack_from(f">{count}H", page, header + 8):
        size, at = _varint(page, at)
        rowid, at = _varint(page, at)
        rowids.append(rowid - (1 << 64) if rowid >= 1 << 63 else rowid)
        if size <= most_local:
            continue
        local = least_local + (size - least_local) % (usable - 4)
        if local > most_local:
            local = least_local
        chains.extend(_chain(file, struct.unpack_from(">I", page, at + local)[0], size - local))
    return rowids, tuple(chains)


def _chain(file: _File, first: int, remaining: int) -> list[int]:
    pages: list[int] = []
    number = first
    while remaining > 0:
        if number == 0 or len(pages) > file.pages:
            raise Unreadable("an overflow chain ends early")
        pages.append(number)
        remaining -= file.usable - 4
        number = struct.unpack_from(">I", file.page(number), 0)[0]
    return pages


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = 0
    for i in range(8):
        byte = data[at + i]
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            return value, at + i + 1
    return (value << 8) | data[at + 8], at + 9


# --- the child ----------------------------------------------------------------------------------

_CHILD = "from memoria_stream.drivers.sqlite_pages import child_main; child_main()"


async def leaf_reports_in_child(path: str, requests: dict[str, LeafRequest]) -> dict[str, LeafReport] | None:
    """``leaf_reports`` in a child process (see the module docstring); None where the file cannot be
    read this way. The caller holds the snapshot that keeps the file as it is meanwhile."""
    done = await anyio.run_process([sys.executable, "-c", _CHILD], input=pickle.dumps((path, requests)),
                                   env=child_env(), check=False)
    if done.returncode != 0:
        raise InternalError(f"the SQLite page reader failed: {done.stderr.decode(errors='replace').strip()[-500:]}")
    kind, value = pickle.loads(done.stdout)
    return value if kind == "ok" else None


def child_main() -> None:
    """Reads (path, requests) pickled on stdin; writes ("ok", reports) or ("unreadable", why)."""
    path, requests = pickle.loads(sys.stdin.buffer.read())
    try:
        answer: tuple[str, object] = ("ok", leaf_reports(path, requests))
    except (Unreadable, OSError, struct.error, IndexError) as exc:
        answer = ("unreadable", str(exc) or type(exc).__name__)
    sys.stdout.buffer.write(pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL))
