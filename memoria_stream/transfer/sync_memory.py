"""What ``copy --sync`` remembers between runs, so that the next one reads only fingerprints.

For one (source, target) pair and one table: every key with the source row's and the target row's
fingerprints (``Connection.fingerprints``) at a moment the two rows were known equal — compared by
canonical digest, or just written from one to the other. At the next sync a key whose two
fingerprints are both still the remembered ones is unchanged on both sides, so it is equal without
being read; every other key is compared in full. A fingerprint only ever tells "this row changed",
so a memory that is stale, lost or from another database costs time, never a wrong answer.

One private file per table under ``$MEMORIA_STREAM_STATE_DIR`` (default
``$XDG_STATE_HOME/memoria-stream``, else ``~/.local/state/memoria-stream``), in a folder named by a
digest of the two databases' identities (no URL, user or password is stored). Each file holds
(keys, source fingerprints, target fingerprints) chunks per key partition, then its index and, per
partition, the count and sum of its target fingerprints (``keyspool.summary_of``) — kept from the
entries themselves, so that a target whose own sum agrees holds exactly what is remembered — and,
where the source can tell (``Connection.storage_changes``: SQLite's b-tree leaves), the units of
storage that held the source's rows at that very snapshot, so that the next sync reads only the rows
of units that changed since. It is written beside the old one and renamed over it only after the
target transaction committed.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import secrets
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Hashable, Mapping, Sequence

from memoria_stream.drivers.urls import DatabaseURL
from memoria_stream.private import make_private_dirs
from memoria_stream.transfer.keyspool import ChunkFile, Key, grouped, summary_of

FORMAT = 3  # 2: per-partition target summaries; PostgreSQL prints hash the row version (scope in the signature);
# 3: SQLite prints are XXH3-128
STALE_PARTIAL_SECONDS = 24 * 3600
BUFFERED_KEYS = 20_000
_TRAILER = struct.Struct(">Q")


def state_root(environ: Mapping[str, str] = os.environ) -> Path:
    """Where memoria-stream keeps what it remembers between runs (the XDG state folder)."""
    if explicit := environ.get("MEMORIA_STREAM_STATE_DIR"):
        return Path(explicit)
    base = environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "memoria-stream"


def pair_folder(source: DatabaseURL, target: DatabaseURL) -> Path | None:
    """The folder of one (source, target) pair; None where remembering makes no sense (``:memory:``)."""
    if source.is_memory or target.is_memory:
        return None
    pair = hashlib.sha256(f"{source.identity()}\n=>\n{target.identity()}".encode()).hexdigest()[:32]
    return state_root() / "sync" / pair


def sweep(folder: Path | None, older_than: float = STALE_PARTIAL_SECONDS) -> None:
    """Remove the partial memories a killed sync left in ``folder`` (a running sync's are younger:
    it writes to its own as it goes)."""
    if folder is None or not folder.is_dir():
        return
    cutoff = time.time() - older_than
    for path in folder.glob(".*.partial"):
        with contextlib.suppress(OSError):  # gone meanwhile, or not ours to remove
            if path.stat().st_mtime < cutoff:
                path.unlink()


def signature(source_columns: Any, target_columns: Any) -> str:
    """What the fingerprints were taken over: a memory of other columns (a migration ran) is not used."""
    return hashlib.sha256(repr((FORMAT, source_columns, target_columns)).encode()).hexdigest()


@dataclass
class TableMemory(ChunkFile):
    """One table's remembered keys, read a partition at a time, and per partition ``summary_of``
    its keys and target prints (so that a target that still holds exactly those is not read)."""

    summaries: dict[int, tuple[int, int]] = field(default_factory=dict)
    units: Any = None  # the source's storage units at the remembered snapshot, if known
    target_unchanged: bool = False  # set once the target's own summary was found equal

    @property
    def target_summary(self) -> tuple[int, int]:
        return sum(c for c, _ in self.summaries.values()), sum(s for _, s in self.summaries.values())

    def summary(self, part: int) -> tuple[int, int]:
        return self.summaries.get(part, (0, 0))

    def partition(self, file: IO[bytes], part: int) -> tuple[list[Key], list[bytes], list[bytes]]:
        """One partition's keys with their remembered source and target prints (three aligned lists)."""
        found: tuple[list[Key], list[bytes], list[bytes]] = ([], [], [])
        for chunk in self.read(file, part):
            for column, values in zip(found, chunk):
                column.extend(values)
        return found


def load(folder: Path | None, name: str, expected: str) -> TableMemory | None:
    """The memory of table ``name`` if there is one, readable, and taken over the same columns."""
    header = _header(folder, name)
    if header is None or header.get("signature") != expected:
        return None
    assert folder is not None
    return TableMemory(folder / f"{name}.sync", header["index"], summaries=header["summaries"],
                       units=header.get("units"))


def remembers_storage(folder: Path | None, names: Sequence[str]) -> bool:
    """Does every table of ``names`` have a memory with the source's storage units (so that the next
    sync reads only what changed, and needs no helper process to hash the rest)?"""
    return all((header := _header(folder, name)) is not None and header.get("units") is not None for name in names)


def _header(folder: Path | None, name: str) -> dict[Hashable, Any] | None:
    if folder is None:
        return None
    try:
        with open(folder / f"{name}.sync", "rb") as file:
            file.seek(-_TRAILER.size, os.SEEK_END)
            (at,) = _TRAILER.unpack(file.read(_TRAILER.size))
            file.seek(at)
            header = pickle.loads(file.read())
    except (OSError, ValueError, EOFError, pickle.UnpicklingError, struct.error):
        return None  # none, or cut short: compare in full, as without one
    return header if isinstance(header, dict) and header.get("format") == FORMAT else None


@dataclass
class MemoryWriter:
    """The next memory of one table, written beside the current one and put in its place by ``commit``."""

    folder: Path
    name: str
    signature: str
    chunks: ChunkFile = field(init=False)
    _file: IO[bytes] | None = None
    _buffers: dict[int, tuple[list[Key], list[bytes], list[bytes]]] = field(default_factory=dict)
    _buffered: int = 0
    _summaries: dict[int, tuple[int, int]] = field(default_factory=dict)
    # The source's storage units at the snapshot these entries were taken in (every entry holds that
    # snapshot's source print, so a row in a unit unchanged since still has it; a key with no entry
    # is compared in full at the next sync).
    units: Any = None

    def __post_init__(self) -> None:
        make_private_dirs(self.folder)
        self.chunks = ChunkFile(self.folder / f".{self.name}.{secrets.token_hex(6)}.partial")
        self._file = self.chunks.create()

    def add(self, keys: list[Key], ours: list[bytes], theirs: list[bytes]) -> None:
        buffers = self._buffers
        for part, (some_keys, some_ours, some_theirs) in grouped(keys, keys, ours, theirs):
            buffer = buffers.get(part) or buffers.setdefault(part, ([], [], []))
            buffer[0].extend(some_keys)
            buffer[1].extend(some_ours)
            buffer[2].extend(some_theirs)
            self._summed(part, summary_of(some_keys, some_theirs))
        self._buffered += len(keys)
        if self._buffered >= BUFFERED_KEYS:
            self._flush()

    def add_chunk(self, part: int, chunk: tuple[list[Key], list[bytes], list[bytes]],
                  summary: tuple[int, int] | None = None) -> None:
        """A partition's entries at once (the classifier's unchanged keys), with their summary where known."""
        assert self._file is not None
        if chunk[0]:
            self.chunks.write(self._file, part, chunk)
            self._summed(part, summary if summary is not None else summary_of(chunk[0], chunk[2]))

    def add_pickled(self, part: int, chunks: list[bytes], summary: tuple[int, int]) -> None:
        """A partition's entries as another memory file stores them (kept unchanged), with their summary."""
        assert self._file is not None
        for data in chunks:
            self.chunks.write_pickled(self._file, part, data)
        self._summed(part, summary)

    def _summed(self, part: int, summary: tuple[int, int]) -> None:
        count, total = self._summaries.get(part, (0, 0))
        self._summaries[part] = (count + summary[0], total + summary[1])

    def commit(self) -> None:
        self._flush()
        assert self._file is not None
        header: dict[Hashable, Any] = {"format": FORMAT, "signature": self.signature, "summaries": self._summaries,
                                       "units": self.units, "index": self.chunks.index}
        at = self._file.tell()
        self._file.write(pickle.dumps(header, protocol=pickle.HIGHEST_PROTOCOL))
        self._file.write(_TRAILER.pack(at))
        self._file.close()
        self._file = None
        os.replace(self.chunks.path, self.folder / f"{self.name}.sync")

    def discard(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        with contextlib.suppress(FileNotFoundError):
            self.chunks.path.unlink()

    def _flush(self) -> None:
        assert self._file is not None
        for part, chunk in self._buffers.items():
            self.chunks.write(self._file, part, chunk)
        self._buffers.clear()
        self._buffered = 0
