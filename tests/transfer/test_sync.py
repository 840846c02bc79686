"""copy --sync: only the difference moves, across backends; dry runs, failures and a live source."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import pytest

from memoria_stream.drivers import connect
from memoria_stream.drivers.base import Connection
from memoria_stream.errors import IntegrityFailure
from memoria_stream.model.catalog import get_table
from memoria_stream.model.types import JSON_NULL
from memoria_stream.transfer.copy import copy_database
from memoria_stream.transfer.sync import SyncReport, sync_database
from memoria_stream.transfer.verify import verify

from support.copy_support import access_events, run_cli, seed
from support.databases import make_database
from support.dataset import build_dataset

PAIRS = [("sqlite", "postgres"), ("postgres", "mysql"), ("mysql", "sqlite"),
         ("sqlite", "sqlite"), ("postgres", "postgres"), ("mysql", "mysql")]
LATE_TABLE = "thread_message_links"  # absent from the first copy; appears in the source only later


# --- helpers: change the source through the driver, values encoded like any write -------------------

def _slot(conn: Connection, index: int) -> str:
    return conn.capabilities.placeholders(1, start=index)


def _encoded(conn: Connection, table: str, column: str, value: Any) -> Any:
    col = get_table(table).column(column)  # type: ignore[union-attr]
    encode = conn.capabilities.encoders.get(col.type) if col else None  # type: ignore[union-attr]
    return value if value is None or encode is None else encode(value)


async def update_row(conn: Connection, table: str, key: Any, **values: Any) -> None:
    q = conn.capabilities.quote
    pk = get_table(table).primary_key[0]  # type: ignore[union-attr]
    sets = ", ".join(f"{q(c)} = {_slot(conn, i)}" for i, c in enumerate(values, 1))
    await conn.execute(f"UPDATE {q(table)} SET {sets} WHERE {q(pk)} = {_slot(conn, len(values) + 1)}",
                       *[_encoded(conn, table, c, v) for c, v in values.items()], key)


async def delete_where(conn: Connection, table: str, column: str, value: Any) -> None:
    q = conn.capabilities.quote
    await conn.execute(f"DELETE FROM {q(table)} WHERE {q(column)} = {_slot(conn, 1)}", value)


async def checksums(url: str) -> dict[str, Any]:
    report = await verify(url, url)
    return {t.name: (t.rows_a, t.checksum_a) for t in report.tables}


def counts(report: SyncReport) -> dict[str, tuple[int, int, int]]:
    return {n: (t.inserted, t.updated, t.deleted) for n, t in report.tables.items() if t.changed}


async def change_source(url: str, data: dict[str, list[dict[str, Any]]]) -> dict[str, tuple[int, int, int]]:
    """Inserts, updates of every kind of value, deletes (a parent with its children) and a new table;
    returns the per-table (inserted, updated, deleted) that a sync must report."""
    ltm = data["long_term_memory"]
    new_memory = {**ltm[0], "memory_id": "ltm-new"}
    new_cluster = {**data["clusters"][0], "id": 500}
    new_members = [{**data["cluster_members"][0], "id": 900 + i, "cluster_id": 500} for i in range(2)]
    await seed(url, {"long_term_memory": [new_memory], "clusters": [new_cluster], "cluster_members": new_members})
    await seed(url, {LATE_TABLE: data[LATE_TABLE]})
    gone_cluster = data["clusters"][1]["id"]
    gone_members = sum(1 for m in data["cluster_members"] if m["cluster_id"] == gone_cluster)
    async with connect(url) as conn, conn.transaction():
        await update_row(conn, "long_term_memory", ltm[1]["memory_id"], summary="changed ✨ text",
                         processed_data={"changed": [1, 2.5, None]}, importance_score=0.123456789,
                         timestamp=datetime(2031, 2, 3, 4, 5, 6, 789000), topic="now set",
                         entities_json=None, keywords_json=JSON_NULL)
        await update_row(conn, "long_term_memory", ltm[2]["memory_id"], summary=ltm[2]["summary"] + "!")
        await update_row(conn, "clusters", data["clusters"][2]["id"], weight=42.5, total_chars=None)
        await delete_where(conn, "long_term_memory", "memory_id", ltm[3]["memory_id"])
        await delete_where(conn, "cluster_members", "cluster_id", gone_cluster)
        await delete_where(conn, "clusters", "id", gone_cluster)
    return {"long_term_memory": (1, 2, 1), "clusters": (1, 1, 1), "cluster_members": (2, 0, gone_members),
            LATE_TABLE: (len(data[LATE_TABLE]), 0, 0)}


# --- tests --------------------------------------------------------------------------------------

@pytest.mark.parametrize("source_backend,target_backend", PAIRS, ids=[f"{a}-to-{b}" for a, b in PAIRS])
async def test_sync_moves_only_the_difference(source_backend: str, target_backend: str, tmp_path: Path) -> None:
    data = build_dataset()
    async for source in make_database(source_backend, tmp_path, "source"):
        async for target in make_database(target_backend, tmp_path, "target"):
            await seed(source, {n: rows for n, rows in data.items() if n != LATE_TABLE})
            await copy_database(source, target)
            expected = await change_source(source, data)
            before = await checksums(target)

            preview = await sync_database(source, target, dry_run=True)
            assert counts(preview) == expected
            assert preview.created_tables == [LATE_TABLE]
            assert await checksums(target) == before  # a dry run writes nothing
            assert not (await verify(source, target)).ok

            report = await sync_database(source, target)
            assert counts(report) == expected
            assert report.created_tables == [LATE_TABLE]
            assert report.tables["agents"].unchanged == len(data["agents"])
            assert (await verify(source, target)).ok

            again = await sync_database(source, target)
            assert again.changed == 0 and not again.created_tables
            assert "Nothing changed" in again.headline()
            await _assert_sequence_moved(target)


async def _assert_sequence_moved(url: str) -> None:
    """A new cluster gets an id past the synced ones (the sequence moved with the inserted ids)."""
    async with connect(url) as conn:
        q = conn.capabilities.quote
        await conn.execute(f"INSERT INTO {q('clusters')} (summary) VALUES ('fresh')")
        rows = await conn.fetch(f"SELECT id FROM {q('clusters')} WHERE summary = 'fresh'")
        assert rows[0][0] > 500


@pytest.mark.parametrize("target_backend", ["sqlite", "postgres", "mysql"])
async def test_failed_sync_leaves_the_target_as_it_was(target_backend: str, tmp_path: Path) -> None:
    data = build_dataset()
    source = f"sqlite:///{tmp_path / 'source.db'}"
    await seed(source, {n: rows for n, rows in data.items() if n != LATE_TABLE})
    async for target in make_database(target_backend, tmp_path, "target"):
        await copy_database(source, target)
        await change_source(source, data)
        async with connect(source) as conn, conn.transaction(foreign_keys=False):  # a dangling FK in the source
            await conn.execute("UPDATE cluster_members SET cluster_id = 99999 WHERE id = 900")
        before = await checksums(target)
        with pytest.raises(IntegrityFailure, match="cluster_id"):
            await sync_database(source, target)
        assert await checksums(target) == before  # nothing deleted, updated, inserted or created
        async with connect(target) as conn:
            assert LATE_TABLE not in await conn.table_names()


async def test_cli_sync_dry_run_and_nothing_to_do(tmp_path: Path) -> None:
    data = build_dataset()
    source, target = f"sqlite:///{tmp_path / 'source.db'}", f"sqlite:///{tmp_path / 'target.db'}"
    await seed(source, {n: rows for n, rows in data.items() if n != LATE_TABLE})
    assert run_cli("copy", source, target, "--quiet").returncode == 0
    await change_source(source, data)

    dry = run_cli("copy", source, target, "--sync", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "Would change" in dry.stderr and "dry run" in dry.stderr
    assert "long_term_memory" in dry.stderr
    synced = run_cli("copy", source, target, "--sync", "--verify")
    assert synced.returncode == 0, synced.stderr
    assert "Changed" in synced.stderr
    again = run_cli("copy", source, target, "--sync")
    assert "Nothing changed" in again.stderr and again.returncode == 0
    preview = run_cli("copy", source, target, "--dry-run")  # without --sync: a full copy's preflight
    assert preview.returncode == 0, preview.stderr
    assert "Nothing changed" in run_cli("copy", source, target, "--sync").stderr  # it wrote nothing


@pytest.mark.parametrize("source_backend,target_backend", [("sqlite", "postgres"), ("postgres", "sqlite")])
async def test_sync_while_the_source_is_written(source_backend: str, target_backend: str, tmp_path: Path) -> None:
    """Each writer step bumps a counter and inserts one event in one transaction: the target must
    hold exactly as many step events as its counter says, i.e. one committed moment of the source."""
    data = build_dataset()
    data["memory_access_events"] += access_events(3000)
    data["clusters"] = [{**c, "update_count": 0} if c["id"] == 1 else c for c in data["clusters"]]
    async for source in make_database(source_backend, tmp_path, "source"):
        async for target in make_database(target_backend, tmp_path, "target"):
            await seed(source, data)
            await copy_database(source, target)
            done = anyio.Event()
            steps = 0

            async def writer() -> None:
                nonlocal steps
                async with connect(source) as conn:
                    while not done.is_set():
                        steps += 1
                        async with conn.transaction():
                            await update_row(conn, "clusters", 1, update_count=steps)
                            await seed_event(conn, 50_000 + steps)
                        await anyio.sleep(0.002)

            async with anyio.create_task_group() as group:
                group.start_soon(writer)
                for _ in range(3):
                    await sync_database(source, target)
                    await _assert_one_moment(target)
                    # A SQLite source locks the writer out while a sync reads it: let it commit between.
                    await anyio.sleep(0.05)
                done.set()
            assert steps > 3
            await sync_database(source, target)
            assert (await verify(source, target)).ok


async def seed_event(conn: Connection, event_id: int) -> None:
    q = conn.capabilities.quote
    await conn.execute(f"INSERT INTO {q('memory_access_events')} (id, memory_id, namespace, accessed_at, access_type) "
                       f"VALUES ({event_id}, 'step', 'default', {_slot(conn, 1)}, 'retrieval')",
                       _encoded(conn, "memory_access_events", "accessed_at", datetime(2024, 1, 1)))


async def _assert_one_moment(url: str) -> None:
    async with connect(url) as conn:
        counter = (await conn.fetch("SELECT update_count FROM clusters WHERE id = 1"))[0][0]
        events = (await conn.fetch("SELECT count(*) FROM memory_access_events WHERE id > 50000"))[0][0]
        assert int(events) == int(counter), f"counter {counter} but {events} step events"


# --- the memory of the last sync -----------------------------------------------------------------

async def change_target(url: str, data: dict[str, list[dict[str, Any]]]) -> dict[str, tuple[int, int, int]]:
    """Someone writes the target between two syncs: the next sync must put those rows back too."""
    member = next(m for m in data["cluster_members"][::-1] if m["cluster_id"] != data["clusters"][1]["id"])
    async with connect(url) as conn, conn.transaction():
        await update_row(conn, "agents", data["agents"][0]["agent_id"], name="renamed on the target")
        await delete_where(conn, "cluster_members", "id", member["id"])
    return {"agents": (0, 1, 0), "cluster_members": (1, 0, 0)}


def _merged(*expected: dict[str, tuple[int, int, int]]) -> dict[str, tuple[int, int, int]]:
    total: dict[str, tuple[int, int, int]] = {}
    for one in expected:
        for name, numbers in one.items():
            total[name] = tuple(a + b for a, b in zip(total.get(name, (0, 0, 0)), numbers))  # type: ignore[assignment]
    return total


@pytest.mark.parametrize("source_backend,target_backend", PAIRS, ids=[f"{a}-to-{b}" for a, b in PAIRS])
async def test_a_remembered_sync_finds_every_change_on_either_side(
        source_backend: str, target_backend: str, tmp_path: Path, private_state_dir: Path) -> None:
    data = build_dataset()
    async for source in make_database(source_backend, tmp_path, "source"):
        async for target in make_database(target_backend, tmp_path, "target"):
            await seed(source, {n: rows for n, rows in data.items() if n != LATE_TABLE})
            first = await sync_database(source, target)  # into an empty target: creates, copies, remembers
            assert (await verify(source, target)).ok and first.changed == sum(len(r) for n, r in data.items()
                                                                              if n != LATE_TABLE)
            remembered = sorted(private_state_dir.glob("sync/*/*.sync"))
            assert len(remembered) == len(first.tables)
            assert all(p.stat().st_mode & 0o777 == 0o600 for p in remembered)
            assert all(d.stat().st_mode & 0o777 == 0o700 for d in (remembered[0].parent, remembered[0].parent.parent))

            expected = _merged(await change_source(source, data), await change_target(target, data))
            report = await sync_database(source, target)
            assert counts(report) == expected
            assert (await verify(source, target)).ok
            known = [t for t in report.tables.values() if t.name != LATE_TABLE]
            assert all(t.remembered for t in known)
            # Only rows that moved on either side are read in full: 2 + 1 + 1 updated, and none else.
            assert sum(t.compared for t in known) == 4, {t.name: t.compared for t in known}

            again = await sync_database(source, target)
            assert again.changed == 0 and all(t.remembered and not t.compared for t in again.tables.values())


@pytest.mark.parametrize("target_backend", ["sqlite", "postgres"])
async def test_a_damaged_or_foreign_memory_is_compared_in_full(target_backend: str, tmp_path: Path,
                                                               private_state_dir: Path) -> None:
    data = build_dataset()
    async for source in make_database("sqlite", tmp_path, "source"):
        async for target in make_database(target_backend, tmp_path, "target"):
            await seed(source, {n: rows for n, rows in data.items() if n != LATE_TABLE})
            await sync_database(source, target)
            memory = next(private_state_dir.glob("sync/*/long_term_memory.sync"))
            memory.write_bytes(memory.read_bytes()[: memory.stat().st_size // 2])  # cut short
            expected = await change_source(source, data)
            report = await sync_database(source, target)
            assert counts(report) == expected and (await verify(source, target)).ok
            assert not report.tables["long_term_memory"].remembered
            assert report.tables["agents"].remembered


async def test_a_memory_most_rows_moved_away_from_is_replaced_by_a_full_comparison(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import memoria_stream.transfer.sync as sync_module

    monkeypatch.setattr(sync_module, "STALE_MIN_ROWS", 0)
    data = build_dataset()
    async for source in make_database("sqlite", tmp_path, "source"):
        async for target in make_database("postgres", tmp_path, "target"):
            await seed(source, {n: rows for n, rows in data.items() if n != LATE_TABLE})
            await sync_database(source, target)
            async with connect(target) as conn:  # every row gets a new version: the memory matches none
                await conn.execute('UPDATE "long_term_memory" SET "summary" = "summary"')
            expected = await change_source(source, data)
            report = await sync_database(source, target)
            assert counts(report) == expected and (await verify(source, target)).ok
            ltm = report.tables["long_term_memory"]
            assert not ltm.remembered and ltm.compared == ltm.unchanged + ltm.updated  # scanned in full
            assert report.tables["agents"].remembered and not report.tables["agents"].compared
            again = await sync_database(source, target)  # and remembered again since
            assert again.changed == 0 and again.tables["long_term_memory"].remembered


@pytest.mark.parametrize("target_backend", ["sqlite", "postgres", "mysql"])
async def test_a_sync_that_would_orphan_children_changes_nothing(target_backend: str, tmp_path: Path) -> None:
    """The end state's FKs are checked where the sync could break them: here a parent row the source
    lost while its children stayed (the source's FKs were off) — after a remembered sync too."""
    data = build_dataset()
    source = f"sqlite:///{tmp_path / 'source.db'}"
    await seed(source, {n: rows for n, rows in data.items() if n != LATE_TABLE})
    async for target in make_database(target_backend, tmp_path, "target"):
        await sync_database(source, target)  # copies and remembers
        orphaned = next(m["cluster_id"] for m in data["cluster_members"])
        async with connect(source) as conn, conn.transaction(foreign_keys=False):
            await delete_where(conn, "clusters", "id", orphaned)
        before = await checksums(target)
        with pytest.raises(IntegrityFailure, match=f"cluster_id.*{orphaned}.*clusters.id"):
            await sync_database(source, target)
        assert await checksums(target) == before


async def test_partial_memories_a_killed_sync_left_are_swept(tmp_path: Path, private_state_dir: Path) -> None:
    import os
    import time

    data = build_dataset()
    source, target = f"sqlite:///{tmp_path / 'source.db'}", f"sqlite:///{tmp_path / 'target.db'}"
    await seed(source, {"agents": data["agents"]})
    await sync_database(source, target)
    folder = next(private_state_dir.glob("sync/*"))
    old, young = folder / ".agents.0123456789ab.partial", folder / ".agents.ba9876543210.partial"
    old.write_bytes(b"left by a killed sync")
    young.write_bytes(b"another sync's, running")
    two_days_ago = time.time() - 2 * 24 * 3600
    os.utime(old, (two_days_ago, two_days_ago))
    await sync_database(source, target)
    assert not old.exists() and young.exists()
    assert "agents.sync" in {p.name for p in folder.iterdir()}


@pytest.mark.parametrize("target_backend", ["sqlite", "postgres"])
async def test_a_table_the_sync_leaves_out_is_left_alone_while_others_change(
        target_backend: str, tmp_path: Path) -> None:
    """``--tables`` without a table the target holds (a child of synced tables): its rows stay, and
    the end state's FK check still looks at it."""
    data, left_out = build_dataset(), "short_term_memory"
    source = f"sqlite:///{tmp_path / 'source.db'}"
    await seed(source, {n: rows for n, rows in data.items() if n != LATE_TABLE})
    async for target in make_database(target_backend, tmp_path, "target"):
        await seed(target, data)
        expected = await change_source(source, data)
        expected.pop(LATE_TABLE)  # the target already holds the rows the source gets
        report = await sync_database(source, target, tables=[name for name in data if name != left_out])
        assert counts(report) == expected and left_out not in report.tables
        assert (await verify(source, target)).ok  # the left-out table was equal already
        async with connect(target) as conn:
            assert await conn.fetch(f"SELECT count(*) FROM {conn.capabilities.quote(left_out)}") == [
                (len(data[left_out]),)]


@pytest.mark.parametrize("target_backend", ["postgres", "mysql"])
async def test_a_target_nobody_wrote_to_is_summed_not_read(target_backend: str, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import memoria_stream.transfer.sync as sync_module

    scanned: list[list[str]] = []
    real_scan = sync_module.scan_in_worker

    async def watched(url: str, request: Any) -> Any:
        scanned.append(list(request.printed))
        return await real_scan(url, request)

    monkeypatch.setattr(sync_module, "scan_in_worker", watched)
    data = build_dataset()
    async for source in make_database("sqlite", tmp_path, "source"):
        async for target in make_database(target_backend, tmp_path, "target"):
            await seed(source, {n: rows for n, rows in data.items() if n != LATE_TABLE})
            await sync_database(source, target)
            expected = await change_source(source, data)
            scanned.clear()
            report = await sync_database(source, target)  # only the source changed: the target's sums agree
            assert counts(report) == expected and (await verify(source, target)).ok
            assert scanned == [], scanned
            changed_on_target = await change_target(target, data)
            report = await sync_database(source, target)  # now two tables' sums disagree: those are read
            assert counts(report) == changed_on_target and (await verify(source, target)).ok
            assert scanned == [["agents", "cluster_members"]], scanned


async def test_a_sqlite_source_is_read_only_where_its_storage_changed(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import memoria_stream.transfer.sync as sync_module

    rows_read: list[int] = []
    real = sync_module._Sync._storage_changes

    async def watched(self: Any, names: list[str], memories: Any) -> Any:
        found = await real(self, names, memories)
        rows_read.append(sum(change.changed_rows for change in found.values()))
        return found

    monkeypatch.setattr(sync_module._Sync, "_storage_changes", watched)
    data = build_dataset()
    key = data["long_term_memory"][3]["memory_id"]
    long_text = "".join(chr(0x41 + i % 26) for i in range(30_000))  # continues on overflow pages
    async for source in make_database("sqlite", tmp_path, "source"):
        async for target in make_database("postgres", tmp_path, "target"):
            await seed(source, {n: rows for n, rows in data.items() if n != LATE_TABLE})
            await sync_database(source, target)  # copies, and remembers the source's storage
            async with connect(source) as conn:
                await update_row(conn, "long_term_memory", key, summary=long_text)
            report = await sync_database(source, target)
            assert counts(report) == {"long_term_memory": (0, 1, 0)} and (await verify(source, target)).ok
            async with connect(source) as conn:  # one letter deep in the overflow chain, the length kept
                await update_row(conn, "long_term_memory", key, summary=long_text[:29_000] + "!" + long_text[29_001:])
            report = await sync_database(source, target)
            assert counts(report) == {"long_term_memory": (0, 1, 0)} and (await verify(source, target)).ok
            total = sum(len(rows) for name, rows in data.items() if name != LATE_TABLE)
            assert rows_read[0] == 0  # no storage remembered yet: every row is read as always
            assert 0 < rows_read[-1] < total // 4, rows_read  # since: the rows of the changed leaves only
            assert (await sync_database(source, target)).changed == 0
