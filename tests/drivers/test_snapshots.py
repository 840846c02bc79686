"""Snapshots shared by several SQLite connections while another program commits to the file.

In rollback-journal mode a writer that has begun to commit waits for every reader's shared lock and
shuts new readers out meanwhile: a reader joining then would wait for the writer, which waits for
the first reader. These pin the two rules that keep that from deadlocking."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import anyio
import pytest

from memoria_stream.drivers import connect
from memoria_stream.drivers.snapshots import join_snapshot, open_snapshots
from memoria_stream.errors import DatabaseError


def _database(tmp_path: Path) -> Path:
    path = tmp_path / "source.db"
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        db.execute("CREATE TABLE t (x INTEGER)")
        db.execute("INSERT INTO t VALUES (1)")
    return path


class _Writer(threading.Thread):
    """Another program: takes the write lock, inserts a row, waits ``hold`` seconds, commits."""

    def __init__(self, path: Path, hold: float) -> None:
        super().__init__(daemon=True)
        self.db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self.db.execute("BEGIN IMMEDIATE")
        self.db.execute("INSERT INTO t VALUES (2)")
        self.hold, self.committed, self.error = hold, False, None

    def run(self) -> None:
        time.sleep(self.hold)
        try:
            self.db.execute("COMMIT")
            self.committed = True
        except sqlite3.Error as exc:
            self.error = exc
        finally:
            self.db.close()


async def test_a_joining_snapshot_fails_at_once_behind_a_committing_writer(tmp_path: Path) -> None:
    path = _database(tmp_path)
    url = f"sqlite:///{path}"
    async with connect(url) as first, connect(url) as joiner:
        async with first.snapshot():
            writer = _Writer(path, hold=0.0)
            writer.start()  # its COMMIT now waits for ``first``'s shared lock
            await anyio.sleep(0.3)
            with anyio.fail_after(5):  # it used to wait out the 30 s busy timeout
                with pytest.raises(DatabaseError, match="locked"):
                    async with join_snapshot(joiner, None):
                        pass
            assert (await first.fetch("SELECT count(*) FROM t"))[0][0] == 1
        await anyio.to_thread.run_sync(writer.join, 10)
    assert writer.committed and writer.error is None


async def test_snapshots_start_together_after_a_writer_holding_the_write_lock(tmp_path: Path) -> None:
    path = _database(tmp_path)
    writer = _Writer(path, hold=0.3)  # holds the write lock as the snapshots start, then commits
    writer.start()
    with anyio.fail_after(10):
        async with open_snapshots(f"sqlite:///{path}", 3) as readers:
            counts = [(await conn.fetch("SELECT count(*) FROM t"))[0][0] for conn in readers]
    await anyio.to_thread.run_sync(writer.join, 10)
    assert writer.committed and writer.error is None
    assert counts == [2, 2, 2]  # one moment: after the writer's commit, for every reader
