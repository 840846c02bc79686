"""A SQLite database memoria-stream creates is private, whatever the umask; one it finds is left alone."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from memoria_stream.drivers import connect
from memoria_stream.transfer.files import import_data


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_a_database_created_by_import_is_0600(samples: Path, tmp_path: Path) -> None:
    target = tmp_path / "new.db"
    old = os.umask(0o022)
    try:
        report = await import_data(samples / "memoria-sample.ndjson", database_url=f"sqlite:///{target}")
    finally:
        os.umask(old)
    assert report.total_rows > 0
    assert _mode(target) == 0o600


async def test_an_existing_database_keeps_its_mode(tmp_path: Path) -> None:
    target = tmp_path / "shared.db"
    target.touch()
    target.chmod(0o640)
    async with connect(f"sqlite:///{target}") as conn:
        await conn.execute("CREATE TABLE t (x INTEGER)")
    assert _mode(target) == 0o640
