"""Backup and restore on every backend, the backup files, and ``memoria-stream backup``."""

from __future__ import annotations

import resource
import time
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest

from support.backup_helpers import T0, encode, insert_allowed, insert_link, prepare, rows, schema_fingerprint, table_digest
from memoria_stream.backup import files as backup_files
from memoria_stream.drivers import native_backup as backup_native
from memoria_stream.cli.main import main as cli_main
from memoria_stream.backup.actions import create_backup, list_backups, restore_backup
from memoria_stream.drivers import connect
from memoria_stream.errors import DatabaseError, InputError
from memoria_stream.model.types import ColumnType
from memoria_stream.drivers.urls import parse_url


async def _mutate(url: str) -> None:
    """Every kind of change a restore has to undo: insert, update, delete, and a moved id generator."""
    async with connect(url) as conn:
        await insert_allowed(conn, "b")
        await insert_link(conn, "m-9", "m-9")
        await conn.execute("UPDATE chat_history SET user_input = 'changed'")
        await conn.execute("DELETE FROM link_memory_threads WHERE id = 1")


async def test_backup_then_restore_undoes_every_change(db_url: str, tmp_path: Path) -> None:
    await prepare(db_url)
    before = {t: await rows(db_url, t, k) for t, k in (("allowed", "id"), ("link_memory_threads", "id"),
                                                       ("chat_history", "chat_id"))}
    fingerprint = await schema_fingerprint(db_url)
    path = await create_backup(db_url, tmp_path / "b")
    assert path is not None and path.is_file() and path.suffix == "." + backup_files.EXTENSIONS[parse_url(db_url).backend]
    await _mutate(db_url)
    await restore_backup(db_url, path)
    after = {t: await rows(db_url, t, k) for t, k in (("allowed", "id"), ("link_memory_threads", "id"),
                                                      ("chat_history", "chat_id"))}
    assert after == before
    assert await schema_fingerprint(db_url) == fingerprint
    async with connect(db_url) as conn:
        await insert_link(conn, "next", "next")
    assert [r[0] for r in await rows(db_url, "link_memory_threads")] == [1, 2]


async def test_restore_into_another_database(db_url: str, second_db_url: str, tmp_path: Path) -> None:
    await prepare(db_url)
    path = await create_backup(db_url, tmp_path)
    assert path is not None
    await restore_backup(second_db_url, path)
    assert await rows(second_db_url, "chat_history", "chat_id") == await rows(db_url, "chat_history", "chat_id")
    assert await schema_fingerprint(second_db_url) == await schema_fingerprint(db_url)


async def test_driver_suffix_in_url_is_accepted(db_url: str, tmp_path: Path) -> None:
    await prepare(db_url)
    scheme, rest = db_url.split("://", 1)
    suffixed = {"sqlite": "sqlite+pysqlite", "postgresql": "postgresql+asyncpg", "mysql": "mysql+pymysql"}[
        parse_url(db_url).backend] + "://" + rest
    path = await create_backup(suffixed, tmp_path)
    assert path is not None
    await _mutate(db_url)
    await restore_backup(suffixed, path)
    assert [r[1] for r in await rows(db_url, "allowed")] == ["a"]


async def test_retention_keeps_the_newest(db_url: str, tmp_path: Path) -> None:
    await prepare(db_url)
    made = [await create_backup(db_url, tmp_path, keep=2) for _ in range(4)]
    left = [f.path for f in list_backups(tmp_path)]
    assert left == made[2:]


async def test_wrong_kind_of_file_is_refused(db_url: str, tmp_path: Path) -> None:
    other = {"sqlite": "x.dump", "postgresql": "x.sql", "mysql": "x.sqlite3"}[parse_url(db_url).backend]
    (tmp_path / other).write_bytes(b"not a backup")
    with pytest.raises(InputError, match="is not a"):
        await restore_backup(db_url, tmp_path / other)


async def test_corrupt_backup_fails_cleanly(db_url: str, tmp_path: Path) -> None:
    await prepare(db_url)
    bad = tmp_path / ("bad." + backup_files.EXTENSIONS[parse_url(db_url).backend])
    bad.write_bytes(b"this is no backup at all\n" * 100)
    with pytest.raises(DatabaseError):
        await restore_backup(db_url, bad)
    assert [r[1] for r in await rows(db_url, "allowed")] == ["a"]  # the live database is untouched


async def test_in_memory_sqlite_is_a_noop(tmp_path: Path) -> None:
    assert await create_backup("sqlite://", tmp_path / "b") is None
    assert not (tmp_path / "b").exists()
    await restore_backup("sqlite://", tmp_path / "whatever.sqlite3")


@pytest.mark.parametrize("raw", ["postgresql+psycopg://someone:s3cr3t@127.0.0.1:1/nodb",
                                 "mysql+pymysql://someone:s3cr3t@127.0.0.1:1/nodb"])
async def test_password_goes_through_the_environment(
    raw: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[list[str], dict[str, str]]] = []
    real = anyio.open_process

    async def spy(argv: list[str], **kwargs: Any) -> Any:
        seen.append((argv, kwargs["env"]))
        return await real(argv, **kwargs)

    monkeypatch.setattr(backup_native.anyio, "open_process", spy)
    with pytest.raises(DatabaseError, match="failed"):  # nothing listens on port 1
        await create_backup(raw, tmp_path)
    argv, env = seen[0]
    assert not any("s3cr3t" in arg or "+" in arg.split("://")[0] for arg in argv)
    assert "s3cr3t" in (env.get("PGPASSWORD"), env.get("MYSQL_PWD"))
    assert list(tmp_path.iterdir()) == []  # no half-written file left behind


# -- command line ---------------------------------------------------------------------------------


def _cli(*argv: str) -> int:
    return cli_main(list(argv))


async def test_cli_create_list_restore(db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    await prepare(db_url)
    directory = str(tmp_path / "bk")
    for _ in range(3):
        assert await anyio.to_thread.run_sync(_cli, "backup", "create", "--database-url", db_url,
                                              "--backup-dir", directory, "--keep", "2") == 0
    created = capsys.readouterr().out.split()
    assert len(created) == 3 and not Path(created[0]).exists() and Path(created[2]).exists()
    assert await anyio.to_thread.run_sync(_cli, "backup", "list", "--backup-dir", directory) == 0
    listed = [line.split("\t")[0] for line in capsys.readouterr().out.splitlines()]
    assert listed == created[1:]
    await _mutate(db_url)
    assert await anyio.to_thread.run_sync(_cli, "backup", "restore", created[2], "--database-url", db_url) == 0
    assert [r[1] for r in await rows(db_url, "allowed")] == ["a"]


async def test_cli_restore_missing_file_exit_code(db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = await anyio.to_thread.run_sync(_cli, "backup", "restore", str(tmp_path / "nope.dump"),
                                          "--database-url", db_url)
    assert code == InputError.exit_code
    assert "not found" in capsys.readouterr().err


def test_cli_default_directory_is_backups(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("MEMORIA_DATABASE_URL", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    import sqlite3

    sqlite3.connect("memoria.db").close()
    assert _cli("backup", "create") == 0  # the default URL sqlite:///memoria.db
    out = capsys.readouterr().out.strip()
    assert out.startswith("backups/backup_memoria_") and out.endswith(".sqlite3") and Path(out).is_file()


# -- 200k rows --------------------------------------------------------------------------------------

ROWS_PER_TABLE = 100_000


async def _fill(url: str) -> None:
    async with connect(url) as conn:
        ts, meta = encode(conn, ColumnType.TIMESTAMP, T0), encode(conn, ColumnType.JSON, {"n": 1, "tags": ["x"]})
        chat_cols = ("chat_id", "user_input", "ai_output", "model", "timestamp", "session_id", "namespace",
                     "tokens_used", "metadata")
        link_cols = ("id", "source_memory_id", "target_memory_id", "relation", "created_at")
        async with conn.transaction():
            for start in range(0, ROWS_PER_TABLE, 10_000):
                ids = range(start, start + 10_000)
                await conn.write("chat_history", chat_cols, [
                    (f"chat-{i:07d}", f"question {i} " * 4, f"answer {i} é✓ " * 6, "gpt", ts, f"s{i % 97}",
                     "default", i, meta) for i in ids])
                await conn.write("link_memory_threads", link_cols, [
                    (i + 10, f"m-{i}", f"m-{i + 1}", "related", ts) for i in ids])


@pytest.mark.slow
async def test_200k_rows_round_trip(db_url: str, tmp_path: Path) -> None:
    await prepare(db_url)
    await _fill(db_url)
    tables = ("chat_history", "link_memory_threads", "allowed")
    before = {t: await table_digest(db_url, t) for t in tables}
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    path = await create_backup(db_url, tmp_path)
    backup_seconds = time.perf_counter() - started
    assert path is not None
    async with connect(db_url) as conn:
        await conn.execute("DELETE FROM link_memory_threads WHERE id > 50000")
        await conn.execute("UPDATE chat_history SET user_input = 'x'")
    started = time.perf_counter()
    await restore_backup(db_url, path)
    restore_seconds = time.perf_counter() - started
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    after = {t: await table_digest(db_url, t) for t in tables}
    assert after == before and before["chat_history"][0] == ROWS_PER_TABLE + 1  # + prepare()'s row
    print(f"\n200k rows {parse_url(db_url).backend}: file {path.stat().st_size / 1e6:.1f} MB, "
          f"backup {backup_seconds:.2f} s, restore {restore_seconds:.2f} s, "
          f"peak RSS {rss_before / 1024:.0f} -> {rss_after / 1024:.0f} MiB (tools: benchmarks/backup_bench.py)")
    assert rss_after - rss_before < 50 * 1024  # KiB: the data never passes through this process's memory


async def test_backup_is_one_consistent_moment_under_a_concurrent_writer(
    db_url: str, second_db_url: str, tmp_path: Path
) -> None:
    await prepare(db_url)
    written, stop = 0, anyio.Event()

    async def writer() -> None:  # every transaction adds one row to each of two tables
        nonlocal written
        async with connect(db_url) as conn:
            while not stop.is_set():
                async with conn.transaction():
                    await insert_allowed(conn, "w")
                    await insert_link(conn, "w", "w")
                written += 1
                await anyio.sleep(0)

    async with anyio.create_task_group() as tg:
        tg.start_soon(writer)
        while written < 20:
            await anyio.sleep(0.01)
        path = await create_backup(db_url, tmp_path)
        stop.set()  # a clean stop, not a cancel: the writer's connection closes normally
    assert path is not None
    await restore_backup(second_db_url, path)
    allowed, links = await rows(second_db_url, "allowed"), await rows(second_db_url, "link_memory_threads")
    assert len(allowed) == len(links) and len(allowed) > 20
