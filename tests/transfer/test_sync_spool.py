"""The parts of ``--sync`` that need no second database: digests, partitions, the comparison, the worker."""

from __future__ import annotations

import math
import pickle
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from memoria_stream.errors import DatabaseError
from memoria_stream.model.types import JSON_NULL
from memoria_stream.transfer.digests import row_digest, row_digests
from memoria_stream.transfer.keyspool import (
    ARRIVE, KEYS_PER_BATCH, PARTITIONS, REMOVE, SUSPECT, Changes, Counts, Scan, Spool, _PartitionedWriter, compare,
    partition_of, summary_of)
from memoria_stream.transfer.worker import scan_in_worker
from memoria_stream.transfer.sync_memory import MemoryWriter, TableMemory, load


def test_row_digests_equal_row_digest_on_every_kind_of_value() -> None:
    columns = ("a", "b", "c")
    values: list[Any] = [None, "", "x", 0, -1, 2**63 - 1, 2**63, -(2**70), True, False, 0.0, -0.0, 1.0, 1.5,
                         math.inf, -math.inf, math.nan, 5e-324, 1e300, datetime(2024, 1, 2, 3, 4, 5),
                         datetime(2024, 1, 2, 3, 4, 5, 6), {"k": -0.0}, [0.0, -0.05], JSON_NULL, b"\x00\xff"]
    rows = [(v, values[-1 - i], "c") for i, v in enumerate(values)]
    assert row_digests(columns, rows) == [row_digest(columns, r) for r in rows]


def test_partitions_are_stable_and_cover_every_key() -> None:
    assert partition_of(130) == 130 % PARTITIONS
    assert partition_of(-1) == PARTITIONS - 1
    assert partition_of("ltm-1") == partition_of("ltm-1")
    assert 0 <= partition_of("\ud800 lone surrogate") < PARTITIONS
    assert len({partition_of(f"key-{i}") for i in range(2000)}) == PARTITIONS


def _spool(path: Path, tables: dict[str, dict[Any, bytes]]) -> Spool:
    spool = Spool(path)
    with spool.create() as file:
        writer = _PartitionedWriter(spool, file)
        for name, rows in tables.items():
            writer.add(name, list(rows), list(rows.values()))
            spool.rows[name] = len(rows)
        writer.flush()
    return spool


def _scan(path: Path, prints: dict[str, dict[Any, bytes]], digests: dict[str, dict[Any, bytes]]) -> Scan:
    path.mkdir()
    return Scan(list(prints), list(digests), _spool(path / "prints", prints), _spool(path / "digests", digests))


def _classify(tmp_path: Path, source: dict[Any, bytes], target: dict[Any, bytes],
              memory: dict[Any, tuple[bytes, bytes]] | None,
              *, target_unchanged: bool = False) -> tuple[Counts, dict[str, list[Any]], list[Any]]:
    """``compare`` of one table ``t`` whose prints are also its digests; returns the counts, the
    batches of each kind, and the keys kept as equal — after checking that the next memory written
    from them sums its target prints right (what a server's summary is compared with)."""
    changes, kept = Changes(tmp_path / "changes"), _Kept(tmp_path / "next")
    memories = {"t": _remembered(tmp_path / "memory", memory, target_unchanged)} if memory is not None else {}
    digested = {} if memory is not None else {"t": source}
    counts = compare([_scan(tmp_path / "s", {"t": source}, digested)],
                     _scan(tmp_path / "t", {"t": target}, {} if memory is not None else {"t": target}),
                     ["t"], memories, {"t": kept}, changes)
    with changes.open() as file:
        batches = {kind: list(changes.read(file, ("t", kind))) for kind in (REMOVE, ARRIVE, SUSPECT)}
    assert all(len(b) <= KEYS_PER_BATCH for bs in batches.values() for b in bs)
    kept.check()
    return counts["t"], {k: sum(v, []) for k, v in batches.items()}, kept.keys


def _remembered(folder: Path, entries: dict[Any, tuple[bytes, bytes]], target_unchanged: bool) -> TableMemory:
    writer = MemoryWriter(folder, "t", "columns")
    if entries:
        writer.add(list(entries), [s for s, _ in entries.values()], [t for _, t in entries.values()])
    writer.commit()
    memory = load(folder, "t", "columns")
    assert memory is not None
    memory.target_unchanged = target_unchanged
    return memory


class _Kept:
    """The next memory: written for real, and the keys it was given."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.writer, self.keys = folder, MemoryWriter(folder, "t", "columns"), []

    def add_chunk(self, part: int, chunk: tuple[list[Any], list[bytes], list[bytes]],
                  summary: tuple[int, int] | None = None) -> None:
        assert all(partition_of(k) == part for k in chunk[0])
        self.keys += chunk[0]
        self.writer.add_chunk(part, chunk, summary)

    def add_pickled(self, part: int, chunks: list[bytes], summary: tuple[int, int]) -> None:
        for chunk in map(pickle.loads, chunks):
            assert all(partition_of(k) == part for k in chunk[0])
            self.keys += chunk[0]
        self.writer.add_pickled(part, chunks, summary)

    def check(self) -> None:
        self.writer.commit()
        memory = load(self.folder, "t", "columns")
        assert memory is not None
        with memory.open() as file:
            parts = [memory.partition(file, part) for part in range(PARTITIONS)]
        assert sorted(k for keys, _, _ in parts for k in keys) == sorted(self.keys)
        assert memory.target_summary == summary_of([k for keys, _, _ in parts for k in keys],
                                                   [t for _, _, theirs in parts for t in theirs])


def test_compare_without_a_memory_classifies_each_key_by_digest(tmp_path: Path) -> None:
    keys = list(range(3 * KEYS_PER_BATCH))
    source = {k: b"same" for k in keys} | {"new": b"n"}
    source.update({k: b"changed" for k in keys[:KEYS_PER_BATCH + 1]})
    target = {k: b"same" for k in keys[1:]} | {"gone": b"g", "gone2": b"g"}
    counts, batches, kept = _classify(tmp_path, source, target, None)
    assert counts == Counts(inserted=2, updated=KEYS_PER_BATCH, deleted=2)
    assert sorted(map(str, batches[REMOVE])) == sorted(map(str, [*keys[1:KEYS_PER_BATCH + 1], "gone", "gone2"]))
    assert sorted(map(str, batches[ARRIVE])) == sorted(map(str, [*keys[:KEYS_PER_BATCH + 1], "new"]))
    assert batches[SUSPECT] == [] and sorted(kept) == keys[KEYS_PER_BATCH + 1:]


def test_compare_with_a_memory_suspects_every_key_that_moved_on_either_side(tmp_path: Path) -> None:
    memory = {k: (b"s%d" % k, b"t%d" % k) for k in range(1000)}
    source = {k: b"s%d" % k for k in range(1000)} | {5: b"moved", 2000: b"new"}
    target = {k: b"t%d" % k for k in range(1, 1000)} | {7: b"moved", 3000: b"stray"}
    source[9], target[9] = b"t9", b"s9"  # both moved, crossed: still not the remembered pair
    counts, batches, kept = _classify(tmp_path, source, target, memory)
    assert counts == Counts(inserted=2, updated=0, deleted=1, suspect=3)
    assert sorted(batches[ARRIVE]) == [0, 2000] and batches[REMOVE] == [3000]
    assert sorted(batches[SUSPECT]) == [(5, b"moved", b"t5"), (7, b"s7", b"moved"), (9, b"t9", b"s9")]
    assert sorted(kept) == [k for k in range(1, 1000) if k not in (5, 7, 9)]


def test_a_target_that_holds_what_was_remembered_is_not_read(tmp_path: Path) -> None:
    memory = {k: (b"s%d" % k, b"t%d" % k) for k in range(1000)}
    source = {k: b"s%d" % k for k in range(1000)} | {5: b"moved", 2000: b"new"}
    del source[3]
    # Its summary matched: whatever a scan of it would say is not asked (here: nothing at all).
    counts, batches, kept = _classify(tmp_path, source, {}, memory, target_unchanged=True)
    assert counts == Counts(inserted=1, updated=0, deleted=1, suspect=1)
    assert batches[ARRIVE] == [2000] and batches[REMOVE] == [3] and batches[SUSPECT] == [(5, b"moved", b"t5")]
    assert sorted(kept) == [k for k in range(1000) if k not in (3, 5)]


async def test_a_failing_worker_raises_its_error_here(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-folder" / "target.db"
    with pytest.raises(DatabaseError, match="does not exist"):
        await scan_in_worker(f"sqlite:///{missing}", Scan(["agents"], [], Spool(tmp_path / "t"), Spool(tmp_path / "d")))


def test_overlapping_scans_restore_the_gc_settings_once_the_last_ends() -> None:
    import gc

    from memoria_stream.transfer.pipeline import fewer_collections

    before = gc.get_threshold()
    first, second = fewer_collections(), fewer_collections()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)  # not last in, first out: the other scan still runs
    assert gc.get_threshold() != before
    second.__exit__(None, None, None)
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
