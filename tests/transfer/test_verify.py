"""verify: equal data gives equal checksums on every backend and in every file; any change is named."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from memoria_stream.cli.options import verify_after_import
from memoria_stream.drivers import connect
from memoria_stream.transfer.files import export_data, import_data
from memoria_stream.errors import InputError, VerificationError
from memoria_stream.transfer.verify import verify

from support.databases import make_database
from support.copy_support import run_cli, seed
from support.dataset import build_dataset


async def test_same_data_on_two_databases_verifies(db_url: str, second_db_url: str) -> None:
    data = build_dataset()
    await seed(db_url, data)
    await seed(second_db_url, data)
    report = await verify(db_url, second_db_url)
    assert report.ok and [t.rows_a for t in report.tables] == [len(r) for r in data.values()]
    report.raise_for_difference()


async def test_checksums_are_the_same_on_every_backend_and_in_files(tmp_path: Path) -> None:
    data = build_dataset()
    sqlite = f"sqlite:///{tmp_path / 'a.db'}"
    await seed(sqlite, data)
    await export_data(tmp_path / "dump.ndjson", database_url=sqlite)
    await export_data(tmp_path / "dump.json.gz", database_url=sqlite)
    async for pg in make_database("postgres", tmp_path, "pg"):
        async for my in make_database("mysql", tmp_path, "my"):
            await seed(pg, data)  # loaded independently, not copied
            await seed(my, data)
            first = await verify(sqlite, pg)
            second = await verify(my, str(tmp_path / "dump.ndjson"))
            third = await verify(str(tmp_path / "dump.json.gz"), pg)
            assert first.ok and second.ok and third.ok
            sums = {(t.name, t.checksum_a, t.checksum_b) for t in first.tables}
            assert {(t.name, t.checksum_b, t.checksum_a) for t in second.tables} == sums
            assert all(t.checksum_a == t.checksum_b != 0 for t in third.tables)


CHANGES = {
    "changed": ("UPDATE long_term_memory SET summary = 'edited' WHERE memory_id = 'ltm-4'", "long_term_memory",
                "'ltm-4' (differs)"),
    "removed": ("DELETE FROM thread_events WHERE thread_id = 'thread-7'", "thread_events", "'thread-7' (only in A)"),
    "added": ("INSERT INTO link_memory_threads (id, source_memory_id, target_memory_id, relation, created_at) "
              "VALUES (99, 'a', 'b', 'related', '2024-01-01 00:00:00')", "link_memory_threads", "99 (only in B)"),
    "sql-null-for-json-null": ("UPDATE thread_events SET ritual_metadata = NULL WHERE thread_id = 'thread-3'",
                               "thread_events", "'thread-3' (differs)"),
    "empty-text-for-null": ("UPDATE teams SET description = '' WHERE team_id = 'team-0'", "teams",
                            "'team-0' (differs)"),
}


@pytest.mark.parametrize("change", list(CHANGES))
async def test_a_changed_removed_or_added_row_is_named(change: str, db_url: str, second_db_url: str) -> None:
    sql, table, key = CHANGES[change]
    data = build_dataset()
    await seed(db_url, data)
    await seed(second_db_url, data)
    async with connect(second_db_url) as conn:
        await conn.execute(sql)
    report = await verify(db_url, second_db_url)
    assert report.mismatched == [table]
    assert report.tables[[t.name for t in report.tables].index(table)].first_difference == key
    with pytest.raises(VerificationError, match=table):
        report.raise_for_difference()


async def test_a_file_against_a_changed_database(tmp_path: Path, db_url: str) -> None:
    data = build_dataset()
    await seed(db_url, data)
    dump = tmp_path / "dump.json"
    await export_data(dump, database_url=db_url)
    assert (await verify(str(dump), db_url)).ok
    async with connect(db_url) as conn:
        await conn.execute("UPDATE clusters SET polarity = 0.25 WHERE id = 3")
    report = await verify(str(dump), db_url, tables=["clusters", "teams"])
    assert [t.name for t in report.tables] == ["teams", "clusters"] and report.mismatched == ["clusters"]


async def test_negative_zero_equals_zero_and_unknown_tables_are_refused(tmp_path: Path) -> None:
    """PostgreSQL keeps -0.0, SQLite cannot: verify folds the sign so the two still agree."""
    data = build_dataset()
    assert any(str(row["polarity"]) == "-0.0" for row in data["clusters"])
    sqlite = f"sqlite:///{tmp_path / 'a.db'}"
    await seed(sqlite, data)
    async for pg in make_database("postgres", tmp_path):
        await seed(pg, data)
        async with connect(pg) as conn:
            assert ("-0",) in await conn.fetch("SELECT polarity::text FROM clusters")
        assert (await verify(sqlite, pg)).ok
        with pytest.raises(InputError, match="unknown table: nope"):
            await verify(sqlite, pg, tables=["nope"])


async def test_verify_command_and_import_verify_helper(tmp_path: Path) -> None:
    data = build_dataset()
    a, b = f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"
    await seed(a, data)
    dump = tmp_path / "dump.ndjson"
    await export_data(dump, database_url=a)
    report = await import_data(dump, database_url=b)
    args = argparse.Namespace(verify=True, source=str(dump), database_url=b, quiet=True)
    await verify_after_import(args, report)  # identical: no error

    ok = run_cli("verify", str(dump), b, "--table", "teams")
    assert ok.returncode == 0 and "teams" in ok.stdout and "verified: identical" in ok.stdout
    async with connect(b) as conn:
        await conn.execute("DELETE FROM agents WHERE agent_id = 'agent-5'")
    with pytest.raises(VerificationError, match="agents"):
        await verify_after_import(args, report)
    bad = run_cli("verify", a, b)
    assert bad.returncode == 7
    assert "agents" in bad.stderr and "'agent-5' (only in A)" in bad.stderr
    with pytest.raises(InputError, match="stdin"):
        await verify_after_import(argparse.Namespace(verify=True, source="-", database_url=b), report)
