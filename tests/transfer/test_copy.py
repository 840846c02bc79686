"""copy: every directed backend pair, parallel jobs, a dying source, a source being written to."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import anyio
import pytest

from memoria_stream.model.catalog import TABLES
from memoria_stream.transfer.copy import copy_database
from memoria_stream.drivers import connect
from memoria_stream.errors import DatabaseError, InputError, IntegrityFailure
from memoria_stream.transfer.verify import verify

from support.databases import PG_ADMIN_URL, make_database
from support.copy_support import access_events, row_count, run_cli, seed
from support.dataset import build_dataset
from support.helpers import assert_same, read_all

PAIRS = [("sqlite", "postgres"), ("sqlite", "mysql"), ("postgres", "sqlite"),
         ("postgres", "mysql"), ("mysql", "sqlite"), ("mysql", "postgres")]


@pytest.mark.parametrize("source_backend,target_backend", PAIRS, ids=[f"{a}-to-{b}" for a, b in PAIRS])
async def test_copy_between_every_pair(source_backend: str, target_backend: str, tmp_path: Path) -> None:
    data = build_dataset()
    async for source in make_database(source_backend, tmp_path, "source"):
        async for target in make_database(target_backend, tmp_path, "target"):
            await seed(source, data)
            report = await copy_database(source, target)

            assert {t.name: t.rows for t in report.tables.values()} == {n: len(r) for n, r in data.items()}
            assert sorted(report.created_tables) == sorted(TABLES)
            assert (await verify(source, target)).ok
            assert_same(data, await read_all(target))
            await _assert_schema(target)


async def _assert_schema(url: str) -> None:
    """Keys, unique constraints, indexes and sequences of the catalogue hold on the copied target."""
    async with connect(url) as conn:
        for table in TABLES.values():
            assert {ix.name for ix in table.indexes} <= set(await conn.index_names(table.name)), table.name
        q = conn.capabilities.quote
        # The sequence / AUTO_INCREMENT ends past the copied ids: a new row gets the next id (tried
        # first, because a failed insert may use up a sequence value).
        await conn.execute(f"INSERT INTO {q('workspace_members')} (workspace_id, user_id, role, is_admin, is_agent, "
                           "joined_at, updated_at) SELECT workspace_id, 'new-user', role, is_admin, is_agent, joined_at, "
                           "updated_at FROM workspace_members WHERE id = 1")
        assert (await conn.fetch("SELECT max(id) FROM workspace_members"))[0][0] == 21
        with pytest.raises(IntegrityFailure):  # primary key
            await conn.execute(f"INSERT INTO {q('teams')} (team_id, name, slug, created_at, updated_at) "
                               "SELECT team_id, name, 'other-slug', created_at, updated_at FROM teams WHERE team_id = 'team-1'")
        with pytest.raises(IntegrityFailure):  # unique constraint uq_workspace_member
            await conn.execute(f"INSERT INTO {q('workspace_members')} (workspace_id, user_id, role, is_admin, is_agent, "
                               "joined_at, updated_at) SELECT workspace_id, user_id, role, is_admin, is_agent, joined_at, "
                               "updated_at FROM workspace_members WHERE id = 1")


@pytest.mark.parametrize("target_backend", ["postgres", "mysql"])
async def test_jobs_4_and_jobs_1_give_identical_targets(target_backend: str, tmp_path: Path) -> None:
    data = build_dataset()
    data["memory_access_events"] += access_events(3000)
    source = f"sqlite:///{tmp_path / 'source.db'}"
    await seed(source, data)
    async for serial in make_database(target_backend, tmp_path, "serial"):
        async for parallel in make_database(target_backend, tmp_path, "parallel"):
            await seed(parallel, build_dataset(3))  # existing rows: emptied inside the copy's transactions
            one = await copy_database(source, serial, jobs=1)
            four = await copy_database(source, parallel, jobs=4)
            assert one.total_rows == four.total_rows == sum(len(r) for r in data.values())
            assert list(four.tables) == list(one.tables)
            assert (await verify(serial, parallel)).ok
            serial_rows, parallel_rows = await read_all(serial), await read_all(parallel)
            assert_same(serial_rows, parallel_rows)
            assert_same(data, parallel_rows)


async def test_parallel_copy_from_postgres_shares_one_snapshot(tmp_path: Path) -> None:
    data = build_dataset()
    async for source in make_database("postgres", tmp_path, "source"):
        async for target in make_database("mysql", tmp_path, "target"):
            await seed(source, data)
            report = await copy_database(source, target, jobs=3)
            assert report.total_rows == sum(len(r) for r in data.values())
            assert_same(data, await read_all(target))


async def test_parallel_copy_failure_leaves_every_table_as_it_was(tmp_path: Path) -> None:
    """A dangling FK in the source fails the copy before any commit, with --jobs as without."""
    data = build_dataset()
    data["workspace_members"][0]["workspace_id"] = "no-such-workspace"
    source = f"sqlite:///{tmp_path / 'source.db'}"
    await seed(source, data)  # SQLite does not enforce FKs unless asked
    async for target in make_database("postgres", tmp_path, "target"):
        before = build_dataset(4)
        await seed(target, before)
        for jobs in (1, 4):
            with pytest.raises(IntegrityFailure, match="workspace_members"):
                await copy_database(source, target, jobs=jobs)
            assert_same(before, await read_all(target))


BAD_JSON_CASES = [("sqlite", 1), ("mysql", 1), ("postgres", 1), ("postgres", 4)]


@pytest.mark.parametrize("target_backend,jobs", BAD_JSON_CASES, ids=[f"{t}-jobs{j}" for t, j in BAD_JSON_CASES])
async def test_a_stored_json_value_that_does_not_parse_is_named(target_backend: str, jobs: int, tmp_path: Path) -> None:
    """PostgreSQL gets stored JSON text unparsed and parses it itself; its refusal must still name
    the table, column and value, as the client's own parse does for the other targets."""
    source = f"sqlite:///{tmp_path / 'source.db'}"
    await seed(source, build_dataset())
    async with connect(source) as conn:
        await conn.execute("UPDATE long_term_memory SET processed_data = 'not json {' WHERE _rowid_ = 3")
    async for target in make_database(target_backend, tmp_path, "target"):
        before = build_dataset(4)
        await seed(target, before)
        with pytest.raises(InputError) as failure:
            await copy_database(source, target, jobs=jobs)
        assert (failure.value.table, failure.value.column) == ("long_term_memory", "processed_data")
        assert "stored value 'not json {' is not valid" in str(failure.value), failure.value
        assert_same(before, await read_all(target))


KILL_CASES = [(t, fresh, 1) for t in ("sqlite", "postgres", "mysql") for fresh in (True, False)] + [
    ("mysql", False, 4), ("postgres", True, 4)]


@pytest.mark.parametrize("target_backend,fresh,jobs", KILL_CASES,
                         ids=[f"{t}-{'fresh' if f else 'existing'}-jobs{j}" for t, f, j in KILL_CASES])
async def test_killing_the_source_mid_copy_leaves_the_target_as_it_was(
        target_backend: str, fresh: bool, jobs: int, tmp_path: Path) -> None:
    data = build_dataset()
    data["memory_access_events"] += access_events(100_000)
    async for source in make_database("postgres", tmp_path, "source"):
        async for target in make_database(target_backend, tmp_path, "target"):
            await seed(source, data)
            before = build_dataset(3)
            if not fresh:
                await seed(target, before)
            streaming = anyio.Event()

            def on_batch(table: str, rows: int, size: int) -> None:
                if table == "memory_access_events":
                    streaming.set()

            async def kill_source_session() -> None:
                await streaming.wait()
                async with connect(PG_ADMIN_URL) as admin:
                    killed = await admin.fetch(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 "
                        "AND pid <> pg_backend_pid()", source.rsplit("/", 1)[1])
                assert killed and all(r[0] for r in killed)

            failures: list[DatabaseError] = []

            async def copy() -> None:
                try:
                    await copy_database(source, target, batch_rows=1000, jobs=jobs, on_batch=on_batch)
                except DatabaseError as exc:
                    failures.append(exc)

            async with anyio.create_task_group() as group:
                group.start_soon(kill_source_session)
                group.start_soon(copy)
            assert len(failures) == 1 and "PostgreSQL" in str(failures[0]), failures
            async with connect(target) as conn:
                names = await conn.table_names()
            if fresh:
                assert names == []  # the tables the copy created are gone again
            else:
                assert_same(before, await read_all(target))


_WRITER = textwrap.dedent("""
    import sqlite3, sys, time
    db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
    log = open(sys.argv[2], "a", buffering=1)
    i = int(sys.argv[3])
    while True:
        # Two tables in one transaction: a copy of one moment holds the same ids in both.
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO memory_access_events (id, memory_id, namespace, accessed_at, access_type) "
                   "VALUES (?, 'm', 'default', '2024-01-01 00:00:00.000000', 'retrieval')", (i,))
        db.execute("INSERT INTO link_memory_threads (id, source_memory_id, target_memory_id, relation, created_at) "
                   "VALUES (?, 'a', 'b', 'related', '2024-01-01 00:00:00.000000')", (i,))
        db.execute("COMMIT")
        log.write(f"{i}\\n")
        i += 1
        time.sleep(0.0005)
""")


@pytest.mark.parametrize("jobs, journal", [(1, "wal"), (4, "wal"), (4, "delete")])
async def test_copy_of_a_sqlite_file_being_written_is_one_moment(jobs: int, journal: str, tmp_path: Path) -> None:
    """In WAL mode the writer commits while we read; in rollback-journal mode our readers' shared
    locks hold its commits off until the copy's snapshot ends (no guard is taken there)."""
    data = build_dataset()
    data["memory_access_events"] = access_events(60_000, first_id=1)
    data["link_memory_threads"] = [dict(r, id=r["id"]) for r in _links(60_000)]
    path = tmp_path / "live.db"
    source = f"sqlite:///{path}"
    await seed(source, data)
    async with connect(source) as conn:
        await conn.execute(f"PRAGMA journal_mode = {journal}")
    log = tmp_path / "committed.log"
    writer = subprocess.Popen([sys.executable, "-c", _WRITER, str(path), str(log), "1000000"])
    try:
        while not log.exists() or log.read_text().count("\n") < 20:
            await anyio.sleep(0.02)
        async for target in make_database("postgres", tmp_path, "target"):
            report = await copy_database(source, target, jobs=jobs, batch_rows=2000)
            await anyio.sleep(0.2)
            writer.terminate()
            writer.wait(10)
            committed = [int(x) for x in log.read_text().split()]
            events = await _ids(target, "memory_access_events")
            links = await _ids(target, "link_memory_threads")
            copied = [i for i in events if i >= 1_000_000]
            # Exactly a prefix of what the writer committed, the same in both tables, and the writer
            # did commit more while and after the copy ran.
            assert copied == committed[:len(copied)]
            assert [i for i in links if i >= 1_000_000] == copied
            assert 20 <= len(copied) < len(committed)
            assert report.tables["memory_access_events"].rows == 60_000 + len(copied)
    finally:
        if writer.poll() is None:
            writer.terminate()
            writer.wait(10)


def _links(count: int) -> list[dict[str, object]]:
    return [dict(id=r["id"], source_memory_id="a", target_memory_id="b", relation="related",
                 created_at=r["accessed_at"]) for r in access_events(count, first_id=1)]


async def _ids(url: str, table: str) -> list[int]:
    async with connect(url) as conn:
        return [r[0] for r in await conn.fetch(f"SELECT id FROM {table} ORDER BY id")]


async def test_copy_command_with_verify_and_subset(tmp_path: Path) -> None:
    data = build_dataset()
    source = f"sqlite:///{tmp_path / 'source.db'}"
    await seed(source, data)
    async for target in make_database("mysql", tmp_path, "target"):
        result = run_cli("copy", source, target, "--verify", "--jobs", "2", "--table", "teams", "--table", "workspaces")
        assert result.returncode == 0, result.stderr
        assert "verified: identical" in result.stderr and "Copied 20 rows across 2 tables" in result.stderr
        assert sorted((await read_all(target)).keys()) == ["teams", "workspaces"]

        async with connect(target) as conn:
            await conn.execute("UPDATE teams SET name = 'changed' WHERE team_id = 'team-2'")
        result = run_cli("verify", source, target)
        assert result.returncode == 7
        assert "teams" in result.stderr and "'team-2'" in result.stderr
        assert "NO" in result.stdout


async def test_copy_reports_unknown_tables_and_bad_jobs(tmp_path: Path) -> None:
    source = f"sqlite:///{tmp_path / 'source.db'}"
    await seed(source, build_dataset(2))
    result = run_cli("copy", source, f"sqlite:///{tmp_path / 't.db'}", "--table", "nope")
    assert result.returncode == 3 and "unknown table: nope" in result.stderr
    assert run_cli("copy", source, f"sqlite:///{tmp_path / 't.db'}", "--jobs", "0").returncode == 2
    assert await row_count(source, "teams") == 2
