"""Table scope: export, import, copy and verify read and write Memoria's 14 catalogue tables and
nothing else. An application table that shares the database (``users`` with password hashes) and our
own bookkeeping (``memoria_stream_progress``) are out of reach, whatever a flag or a file names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from memoria_stream.drivers import connect

from support.dataset import build_dataset, load_dataset
from support.helpers import assert_same, read_all
from support.processes import assert_clean_failure, run
from test_hostile import ndjson

USERS = [(1, "alice", "$argon2id$alice-hash"), (2, "bob", "$argon2id$bob-hash")]
FORGED = {"id": 3, "name": "mallory", "password_hash": "$argon2id$forged"}


async def users_rows(url: str) -> list[tuple[Any, ...]]:
    async with connect(url) as conn:
        q = conn.capabilities.quote
        return sorted(await conn.fetch(f"SELECT id, name, password_hash FROM {q('users')}"))


@pytest.fixture
async def with_users(db_url: str) -> str:
    """A Memoria database that also holds an application's ``users`` table."""
    async with connect(db_url) as conn:
        await load_dataset(conn, build_dataset(3))
        q = conn.capabilities.quote
        await conn.execute(f"CREATE TABLE {q('users')} (id INTEGER PRIMARY KEY, name VARCHAR(40) NOT NULL, "
                           "password_hash VARCHAR(200) NOT NULL)")
        for row in USERS:
            await conn.execute(f"INSERT INTO {q('users')} VALUES ({conn.capabilities.placeholders(3)})", *row)
    return db_url


async def test_export_of_a_foreign_table_is_refused(with_users: str, tmp_path: Path) -> None:
    dest = tmp_path / "users.json"
    result = run("export-data", str(dest), "--table", "users", "--database-url", with_users)
    assert result.returncode == 3
    assert_clean_failure(result, "users", "unknown table")
    assert not dest.exists()
    assert b"argon2id" not in result.stdout + result.stderr


async def test_full_export_leaves_foreign_tables_out(with_users: str, tmp_path: Path) -> None:
    dest = tmp_path / "all.ndjson"
    result = run("export-data", str(dest), "--database-url", with_users)
    assert result.returncode == 0, result.stderr.decode()
    assert b"users" not in dest.read_bytes() and b"argon2id" not in dest.read_bytes()


@pytest.mark.parametrize("table, row", [("users", FORGED), ("memoria_stream_progress", {"run_key": "x"})])
async def test_import_into_a_foreign_table_is_refused(with_users: str, tmp_path: Path, table: str,
                                                       row: dict[str, Any]) -> None:
    path = ndjson(tmp_path / "forge.ndjson", (table, row))
    before = await read_all(with_users)
    result = run("import-data", str(path), "--database-url", with_users)
    assert result.returncode == 3
    assert_clean_failure(result, "forge.ndjson:2", f"table {table}", "unknown table")
    assert_same(before, await read_all(with_users))
    assert await users_rows(with_users) == USERS


async def test_import_of_a_foreign_table_by_flag_or_resume_is_refused(with_users: str, tmp_path: Path) -> None:
    path = ndjson(tmp_path / "forge.ndjson", ("users", FORGED))
    flagged = run("import-data", str(path), "--table", "users", "--database-url", with_users)
    assert flagged.returncode == 3
    assert_clean_failure(flagged, "users")
    per_table = run("import-data", str(path), "--commit-per-table", "--database-url", with_users)
    assert per_table.returncode == 3
    assert_clean_failure(per_table, "users", "unknown table")
    assert await users_rows(with_users) == USERS


async def test_json_import_into_a_foreign_table_is_refused(with_users: str, tmp_path: Path) -> None:
    path = tmp_path / "forge.json"
    path.write_text('{"metadata": {}, "data": {"users": [{"id": 3, "name": "m", "password_hash": "x"}]}}')
    result = run("import-data", str(path), "--database-url", with_users)
    assert result.returncode == 3
    assert_clean_failure(result, "table users", "unknown table")
    assert await users_rows(with_users) == USERS


async def test_copy_and_verify_of_a_foreign_table_are_refused(with_users: str, second_db_url: str) -> None:
    async with connect(second_db_url) as conn:
        q = conn.capabilities.quote
        await conn.execute(f"CREATE TABLE {q('users')} (id INTEGER PRIMARY KEY, name VARCHAR(40) NOT NULL, "
                           "password_hash VARCHAR(200) NOT NULL)")
    copied = run("copy", with_users, second_db_url, "--table", "users")
    assert copied.returncode == 3
    assert_clean_failure(copied, "users", "unknown table")
    assert await users_rows(second_db_url) == []
    checked = run("verify", with_users, second_db_url, "--table", "users")
    assert checked.returncode == 3
    assert_clean_failure(checked, "users", "unknown table")
