"""backup_guard on SQLite, PostgreSQL and MySQL: changes made elsewhere are undone, errors stay visible."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import anyio
import anyio.from_thread
import anyio.to_thread
import pytest

from support.backup_helpers import insert_allowed, insert_link, prepare, rows, schema_fingerprint
from memoria_stream import backup_guard, backup_guard_sync
from memoria_stream.backup import files as backup_files
from memoria_stream.backup import guard as guard_module
from memoria_stream.drivers import connect
from memoria_stream.errors import DatabaseError


@pytest.fixture
async def url(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(tmp_path)  # backups/ lands in the test's own directory, as in Memoria's tests
    await prepare(db_url)
    return db_url


async def _insert_elsewhere(url: str, value: str = "b") -> None:
    async with connect(url) as conn:  # a separate connection, closed before the guard checks
        await insert_allowed(conn, value)


def _values(found: list[tuple[object, ...]]) -> list[object]:
    return [r[1] for r in found]


async def test_row_inserted_inside_is_gone_and_schema_and_sequence_survive(url: str) -> None:
    before_schema = await schema_fingerprint(url)
    before_links, before_chats = await rows(url, "link_memory_threads"), await rows(url, "chat_history", "chat_id")
    async with backup_guard(url) as guard:
        await _insert_elsewhere(url)
        async with connect(url) as conn:
            await insert_link(conn, "m-3", "m-4")  # moves the id generator to 2
    assert guard.restored and guard.restore_error is None
    assert guard.mismatches == {"allowed": (1, 2), "link_memory_threads": (1, 2)}
    assert guard.backup_path is not None and guard.backup_path.parent == Path("backups")
    assert _values(await rows(url, "allowed")) == ["a"]
    assert await rows(url, "link_memory_threads") == before_links
    assert await rows(url, "chat_history", "chat_id") == before_chats
    assert await schema_fingerprint(url) == before_schema
    async with connect(url) as conn:  # the next id is the one it was before the block
        await insert_link(conn, "m-5", "m-6")
        await insert_allowed(conn, "c")
    assert [r[0] for r in await rows(url, "link_memory_threads")] == [1, 2]
    assert [r[:2] for r in await rows(url, "allowed")] == [(1, "a"), (2, "c")]


async def test_ignored_table_keeps_its_change(url: str) -> None:
    async with backup_guard(url, ignore_tables={"allowed"}, check_size=False) as guard:
        await _insert_elsewhere(url)
    assert not guard.restored and guard.mismatches == {} and not guard.changed
    assert guard.counts_after["allowed"] == 2  # still reported, only not judged
    assert _values(await rows(url, "allowed")) == ["a", "b"]


async def test_auto_restore_off_keeps_change_and_reports_it(url: str) -> None:
    async with backup_guard(url, auto_restore_on_mismatch=False) as guard:
        await _insert_elsewhere(url)
    assert guard.changed and not guard.restored
    assert guard.mismatches == {"allowed": (1, 2)}
    assert _values(await rows(url, "allowed")) == ["a", "b"]


async def test_block_that_raises_after_a_change_is_restored_and_error_reaches_caller(url: str) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        async with backup_guard(url) as guard:
            await _insert_elsewhere(url)
            raise RuntimeError("boom")
    assert guard.restored
    assert _values(await rows(url, "allowed")) == ["a"]


async def test_block_that_raises_without_a_change_restores_nothing(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[object] = []

    async def spy(*args: object) -> None:
        calls.append(args)

    monkeypatch.setattr(guard_module, "restore_backup", spy)
    with pytest.raises(KeyError):
        async with backup_guard(url) as guard:  # check_size on: the guard's own backup must not move the size
            raise KeyError("nothing changed")
    assert calls == [] and not guard.restored and not guard.changed
    assert guard.size_before == guard.size_after and guard.counts_before == guard.counts_after


async def test_cancelled_block_is_restored(url: str) -> None:
    with anyio.CancelScope() as scope:
        async with backup_guard(url) as guard:
            await _insert_elsewhere(url)
            scope.cancel()
            await anyio.sleep(5)
    assert scope.cancelled_caught and guard.restored
    assert _values(await rows(url, "allowed")) == ["a"]


async def test_table_created_inside_is_dropped(url: str) -> None:
    async with backup_guard(url) as guard:
        async with connect(url) as conn:
            await conn.execute("CREATE TABLE extra (id INTEGER PRIMARY KEY)")
    assert guard.mismatches == {"extra": (None, 0)} and guard.restored
    async with connect(url) as conn:
        assert "extra" not in await conn.table_names()


async def test_two_guards_in_the_same_instant_write_two_files(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    frozen = datetime(2025, 1, 1, 12, 0, 0, 0, tzinfo=timezone.utc)

    class Clock(datetime):
        @classmethod
        def now(cls, tz: object = None) -> "Clock":  # type: ignore[override]
            return frozen  # type: ignore[return-value]

    monkeypatch.setattr(backup_files, "datetime", Clock)
    async with backup_guard(url) as first, backup_guard(url) as second:
        pass
    assert first.backup_path != second.backup_path
    assert first.backup_path is not None and first.backup_path.exists()
    assert second.backup_path is not None and second.backup_path.exists()
    assert "20250101T120000.000000Z" in first.backup_path.name


async def test_restore_failure_keeps_the_block_error(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(*args: object) -> None:
        raise DatabaseError("injected restore failure")

    monkeypatch.setattr(guard_module, "restore_backup", broken)
    with pytest.raises(ValueError, match="block failed") as caught:
        async with backup_guard(url) as guard:
            await _insert_elsewhere(url)
            raise ValueError("block failed")
    assert any("injected restore failure" in note for note in caught.value.__notes__)
    assert isinstance(guard.restore_error, DatabaseError) and not guard.restored


async def test_restore_failure_after_a_successful_block_is_raised(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(*args: object) -> None:
        raise DatabaseError("injected restore failure")

    monkeypatch.setattr(guard_module, "restore_backup", broken)
    with pytest.raises(DatabaseError, match="restoring .* failed") as caught:
        async with backup_guard(url):
            await _insert_elsewhere(url)
    assert "injected restore failure" in str(caught.value.__cause__)


async def test_sync_wrapper_restores(url: str) -> None:
    def script() -> bool:
        with backup_guard_sync(url) as guard:
            anyio.from_thread.run(_insert_elsewhere, url)
        return guard.restored

    assert await anyio.to_thread.run_sync(script)
    assert _values(await rows(url, "allowed")) == ["a"]


async def test_sync_wrapper_reraises_block_error(url: str) -> None:
    def script() -> None:
        with backup_guard_sync(url, auto_restore_on_mismatch=False):
            raise LookupError("from the script")

    with pytest.raises(LookupError, match="from the script"):
        await anyio.to_thread.run_sync(script)


async def test_in_memory_sqlite_is_not_guarded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    async with backup_guard("sqlite://") as guard:
        pass
    assert guard.backup_path is None and not guard.restored and not Path("backups").exists()


async def test_connection_open_across_the_restore_sees_the_restored_data(url: str) -> None:
    async with connect(url) as held:  # e.g. an application's pooled connection, idle during the guard
        assert _values(await held.fetch("SELECT * FROM allowed ORDER BY id")) == ["a"]
        async with backup_guard(url) as guard:
            await _insert_elsewhere(url)
        assert guard.restored
        assert _values(await held.fetch("SELECT * FROM allowed ORDER BY id")) == ["a"]
        await insert_allowed(held, "c")  # and it can still write to the restored database
    assert _values(await rows(url, "allowed")) == ["a", "c"]


async def test_guard_retention(url: str) -> None:
    for _ in range(3):
        async with backup_guard(url, keep=2):
            pass
    assert len(backup_files.list_backups(Path("backups"))) == 2
