"""A PostgreSQL login without the privilege for replica mode (a managed database's usual user) still
imports Memoria's own JSON, whose tables come children first: into tables memoria-stream created FK
checks are deferred to COMMIT; into tables Memoria created (FKs not deferrable) tables that arrive
before their parents wait in a private spool file and load after them."""

from __future__ import annotations

import os
import stat
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import anyio
import httpx
import orjson
import pytest

from memoria_stream.api import Settings

from memoria_stream.drivers import connect
from memoria_stream.transfer.files import export_data, import_data
from memoria_stream.errors import DatabaseError, InputError, IntegrityFailure, MemoriaStreamError
from memoria_stream.transfer.spool import PREFIX

from support.api_server import running
from support.databases import PG_ADMIN_URL, _unavailable
from support.helpers import assert_same, read_all
from support.samples import expected_from_sample_db


FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture
async def unprivileged_url() -> AsyncIterator[str]:
    role, database = f"ms_user_{uuid.uuid4().hex[:8]}", f"ms_{uuid.uuid4().hex[:12]}"
    try:
        async with connect(PG_ADMIN_URL) as admin:
            await admin.execute(f"CREATE ROLE {role} LOGIN NOSUPERUSER")
            await admin.execute(f"CREATE DATABASE {database} OWNER {role}")
    except DatabaseError as exc:
        _unavailable("postgres", exc)
    host = PG_ADMIN_URL.split("@", 1)[1].rsplit("/", 1)[0]
    yield f"postgresql://{role}@{host}/{database}"
    async with connect(PG_ADMIN_URL) as admin:
        await admin.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        await admin.execute(f"DROP ROLE IF EXISTS {role}")


async def test_children_first_json_imports_without_replica_privilege(
        unprivileged_url: str, samples: Path, tmp_path: Path) -> None:
    async with connect(unprivileged_url) as conn:  # the premise: this user may not use replica mode
        with pytest.raises(DatabaseError, match="permission denied"):
            async with conn.transaction():
                await conn.execute("SET LOCAL session_replication_role = replica")
    report = await import_data(samples / "memoria-sample.json", database_url=unprivileged_url)
    assert report.total_rows == 600
    assert_same(expected_from_sample_db(samples / "memoria-sample.db"), await read_all(unprivileged_url))
    # Re-importing children-first input over the data: every table is emptied before any insert, so
    # no ON DELETE CASCADE / SET NULL reaches rows just loaded.
    again = await import_data(samples / "memoria-sample.json", database_url=unprivileged_url)
    assert again.total_rows == 600
    assert_same(expected_from_sample_db(samples / "memoria-sample.db"), await read_all(unprivileged_url))
    # Our own files list parents first: they re-import over the data.
    dump = tmp_path / "ours.ndjson"
    await export_data(dump, database_url=unprivileged_url)
    ours = await import_data(dump, database_url=unprivileged_url)
    assert ours.total_rows == 600
    assert_same(expected_from_sample_db(samples / "memoria-sample.db"), await read_all(unprivileged_url))


# --- Tables Memoria created: FKs not deferrable, so parents must go in first -------------------------

@pytest.fixture
async def memoria_made_url(unprivileged_url: str) -> str:
    """The app role's database with Memoria's own PostgreSQL DDL, created by that role."""
    async with connect(unprivileged_url) as conn:
        await conn.execute((FIXTURES / "memoria-ddl" / "postgresql.sql").read_text())
        not_deferrable = await conn.fetch(
            "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND NOT condeferrable")
    assert not_deferrable[0][0] > 0  # the premise: these FKs are checked row by row
    return unprivileged_url


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The temp dir of this process (and of the CLI it starts), to see what a load leaves there."""
    directory = tmp_path / "tmp"
    directory.mkdir()
    monkeypatch.setenv("TMPDIR", str(directory))
    monkeypatch.setattr(tempfile, "tempdir", str(directory))
    return directory


async def _cli_import(path: Path, url: str) -> tuple[int, str]:
    command = [sys.executable, "-m", "memoria_stream", "import-data", str(path), "--database-url", url, "-q"]
    done = await anyio.run_process(command, check=False, env=dict(os.environ))
    return done.returncode, done.stderr.decode()


@pytest.mark.parametrize("sample", ["memoria-sample.json", "memoria-sample.ndjson"])
async def test_memoria_files_import_twice_from_the_cli_into_memoria_tables(
        memoria_made_url: str, samples: Path, private_tmp: Path, sample: str) -> None:
    expected = expected_from_sample_db(samples / "memoria-sample.db")
    for _ in range(2):  # the second run goes over existing data
        code, errors = await _cli_import(samples / sample, memoria_made_url)
        assert (code, errors) == (0, "")
        assert_same(expected, await read_all(memoria_made_url))
        assert list(private_tmp.iterdir()) == []


async def test_memoria_json_imports_twice_through_the_api_into_memoria_tables(
        memoria_made_url: str, samples: Path, private_tmp: Path) -> None:
    expected = expected_from_sample_db(samples / "memoria-sample.db")
    with running(Settings(memoria_made_url)) as base:
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            for _ in range(2):
                with (samples / "memoria-sample.json").open("rb") as upload:
                    answer = await client.post("/admin/migrations/import",
                                               files={"file": ("memoria-backup.json", upload)}, data={"format": "json"})
                assert answer.status_code == 200, answer.text
                assert answer.json()["total_rows"] == 600
                assert_same(expected, await read_all(memoria_made_url))
                assert list(private_tmp.iterdir()) == []


def _spool_modes(directory: Path) -> list[tuple[int, list[int]]]:
    return [(stat.S_IMODE(d.stat().st_mode), [stat.S_IMODE(f.stat().st_mode) for f in d.iterdir()])
            for d in directory.iterdir() if d.name.startswith(PREFIX)]


async def test_spool_files_are_private_and_removed(memoria_made_url: str, samples: Path, private_tmp: Path) -> None:
    seen: list[tuple[int, list[int]]] = []
    report = await import_data(samples / "memoria-sample.json", database_url=memoria_made_url,
                               on_batch=lambda *_: seen.extend(_spool_modes(private_tmp)))
    assert report.total_rows == 600
    # Memoria's JSON lists its tables last, so every table was spooled: the first batch written
    # comes from a spool file that is still there.
    assert seen and seen[0][0] == 0o700 and seen[0][1] and set(seen[0][1]) == {0o600}
    assert all(d == 0o700 and set(f) <= {0o600} for d, f in seen)
    assert list(private_tmp.iterdir()) == []


def _bad_time(data: dict[str, Any]) -> None:  # found while spooling, in the last row of the last table
    data["workspaces"][-1]["created_at"] = "not a time"


def _dangling(data: dict[str, Any]) -> None:  # found by PostgreSQL while the spool is loaded
    data["chat_history"][-1]["workspace_id"] = "ws-missing"


@pytest.mark.parametrize("spoil, error", [(_bad_time, InputError), (_dangling, IntegrityFailure)])
async def test_failed_import_leaves_target_and_temp_dir_as_they_were(
        memoria_made_url: str, samples: Path, private_tmp: Path, tmp_path: Path,
        spoil: Callable[[dict[str, Any]], None], error: type[MemoriaStreamError]) -> None:
    expected = expected_from_sample_db(samples / "memoria-sample.db")
    await import_data(samples / "memoria-sample.json", database_url=memoria_made_url)
    document = orjson.loads((samples / "memoria-sample.json").read_bytes())
    spoil(document["data"])
    bad = tmp_path / "bad.json"
    bad.write_bytes(orjson.dumps(document))
    with pytest.raises(error):
        await import_data(bad, database_url=memoria_made_url)
    assert_same(expected, await read_all(memoria_made_url))
    assert list(private_tmp.iterdir()) == []
    code, errors = await _cli_import(bad, memoria_made_url)  # from the CLI: one line, no traceback
    assert code == error.exit_code and errors.count("\n") == 1 and "Traceback" not in errors
    assert_same(expected, await read_all(memoria_made_url))
    assert list(private_tmp.iterdir()) == []


async def test_stale_spools_of_dead_processes_are_removed_at_start(
        memoria_made_url: str, samples: Path, private_tmp: Path) -> None:
    dead = await anyio.run_process([sys.executable, "-c", "import os; print(os.getpid())"])
    stale = private_tmp / f"{PREFIX}{int(dead.stdout)}-crashed"
    live = private_tmp / f"{PREFIX}{os.getppid()}-running"  # a process still alive: not ours to touch
    unrelated = private_tmp / "memoria-stream-other-1"
    for directory in (stale, live, unrelated):
        directory.mkdir()
        (directory / "0.rows").write_bytes(b"x")
    await import_data(samples / "memoria-sample.json", database_url=memoria_made_url)
    assert sorted(p.name for p in private_tmp.iterdir()) == sorted([live.name, unrelated.name])
