"""The parts of ``--sync`` that need no second database: digests, partitions, the comparison, the worker."""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from memoria_stream.errors import DatabaseError
from memoria_stream.model.types import JSON_NULL
from memoria_stream.transfer.digests import row_digest, row_digests
from memoria_stream.transfer.keyspool import (
    ARRIVE, KEYS_PER_BATCH, PARTITIONS, REMOVE, Changes, Counts, Spool, _PartitionedWriter, compare, partition_of,
    scan_in_worker)


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


def test_compare_classifies_each_key_and_batches_the_differing_ones(tmp_path: Path) -> None:
    keys = list(range(3 * KEYS_PER_BATCH))
    source = {"t": {k: b"same" for k in keys} | {"new": b"n"}}
    source["t"].update({k: b"changed" for k in keys[:KEYS_PER_BATCH + 1]})
    target = {"t": {k: b"same" for k in keys[1:]} | {"gone": b"g", "gone2": b"g"}}
    changes = Changes(tmp_path / "changes")
    counts = compare(_spool(tmp_path / "s", source), _spool(tmp_path / "t", target), ["t"], changes)
    assert counts == {"t": Counts(inserted=2, updated=KEYS_PER_BATCH, deleted=2)}
    with changes.open() as file:
        removed = [batch for batch in changes.read(file, ("t", REMOVE))]
        arrived = [batch for batch in changes.read(file, ("t", ARRIVE))]
    assert all(len(b) <= KEYS_PER_BATCH for b in removed + arrived)
    assert sorted(map(str, sum(removed, []))) == sorted(map(str, [*keys[1:KEYS_PER_BATCH + 1], "gone", "gone2"]))
    assert sorted(map(str, sum(arrived, []))) == sorted(map(str, [*keys[:KEYS_PER_BATCH + 1], "new"]))


async def test_a_failing_worker_raises_its_error_here(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-folder" / "target.db"
    with pytest.raises(DatabaseError, match="does not exist"):
        await scan_in_worker(f"sqlite:///{missing}", ["agents"], Spool(tmp_path / "target"))


def test_overlapping_scans_restore_the_gc_settings_once_the_last_ends() -> None:
    import gc

    from memoria_stream.transfer.keyspool import fewer_collections

    before = gc.get_threshold()
    first, second = fewer_collections(), fewer_collections()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)  # not last in, first out: the other scan still runs
    assert gc.get_threshold() != before
    second.__exit__(None, None, None)
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
