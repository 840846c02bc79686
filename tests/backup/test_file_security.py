"""What we write is private, retention touches only this database's backups, and a database name
never reaches a dump tool as an option (security issue 12, items 3, 5 and 11)."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import AsyncIterator, Iterator

import anyio.to_thread
import pytest

from support.backup_helpers import prepare
from support.databases import MYSQL_ADMIN_URL
from memoria_stream.backup import files as backup_files
from memoria_stream.cli.main import main as cli_main
from memoria_stream.backup.actions import create_backup, list_backups
from memoria_stream.drivers import connect
from memoria_stream.transfer.files import export_data
from memoria_stream.errors import ConfigurationError
from memoria_stream.drivers.urls import parse_url


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The common default umask, under which a plain open() makes world-readable files."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _tree_modes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): _mode(p) for p in sorted(root.rglob("*"))}


# -- item 3: file and directory modes --------------------------------------------------------------


async def test_export_to_a_new_file_and_folder_is_private(db_url: str, tmp_path: Path, umask_022: None) -> None:
    await prepare(db_url)
    destination = tmp_path / "out" / "deep" / "dump.ndjson"
    await export_data(destination, database_url=db_url)
    assert _tree_modes(tmp_path / "out") == {"deep": 0o700, "deep/dump.ndjson": 0o600}


async def test_re_export_over_a_world_readable_file_makes_it_private(tmp_path: Path, umask_022: None) -> None:
    url = f"sqlite:///{tmp_path / 'memoria.db'}"
    await prepare(url)
    destination = tmp_path / "dump.json"
    destination.write_bytes(b"old")
    os.chmod(destination, 0o644)
    await export_data(destination, database_url=url)
    assert _mode(destination) == 0o600 and destination.read_bytes().startswith(b"{")


async def test_backup_file_and_created_folder_are_private(db_url: str, tmp_path: Path, umask_022: None) -> None:
    await prepare(db_url)
    path = await create_backup(db_url, tmp_path / "backups" / "memoria")
    assert path is not None and path.stat().st_size > 0
    assert _tree_modes(tmp_path / "backups") == {"memoria": 0o700, f"memoria/{path.name}": 0o600}


async def test_guard_backup_is_private(db_url: str, tmp_path: Path, umask_022: None) -> None:
    from memoria_stream import backup_guard

    await prepare(db_url)
    async with backup_guard(db_url, backup_dir=tmp_path / "g") as guard:
        pass
    assert guard.backup_path is not None
    assert _mode(tmp_path / "g") == 0o700 and _mode(guard.backup_path) == 0o600


# -- item 5: retention keyed on the database's identity ----------------------------------------------


async def test_keep_spares_a_same_named_sqlite_file_in_another_folder(tmp_path: Path) -> None:
    first, second = (f"sqlite:///{tmp_path / folder / 'memoria.db'}" for folder in ("a", "b"))
    for url in (first, second):
        (tmp_path / url.rsplit("/", 2)[1]).mkdir()
        await prepare(url)
    shared = tmp_path / "backups"
    others = [await create_backup(second, shared) for _ in range(2)]
    mine = [await create_backup(first, shared, keep=1) for _ in range(2)]
    assert {f.path for f in list_backups(shared)} == {*others, mine[-1]}
    assert [f.path for f in list_backups(shared, parse_url(second))] == others


async def test_same_file_through_a_relative_url_is_the_same_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    await prepare("sqlite:///memoria.db")
    shared = tmp_path / "backups"
    await create_backup(f"sqlite:///{tmp_path / 'memoria.db'}", shared)
    newest = await create_backup("sqlite:///memoria.db", shared, keep=1)
    assert [f.path for f in list_backups(shared)] == [newest]


@pytest.mark.parametrize("backend", ["postgres", "mysql"])
async def test_keep_spares_the_same_database_name_on_another_server(db_url: str, tmp_path: Path) -> None:
    # Two spellings of the server stand in for two servers: the name (and so the label) is the same.
    await prepare(db_url)
    other_server = db_url.replace("127.0.0.1", "localhost")
    shared = tmp_path / "backups"
    others = [await create_backup(other_server, shared) for _ in range(2)]
    newest = await create_backup(db_url, shared, keep=1)
    assert {f.path for f in list_backups(shared)} == {*others, newest}
    assert len({f.label for f in list_backups(shared)}) == 1


def test_identity_names_backend_host_port_and_database() -> None:
    same = {backup_files.identity_of(parse_url(u)) for u in (
        "postgresql://a:x@db.example:5432/memoria", "postgresql+asyncpg://b@db.example/memoria")}
    assert len(same) == 1  # the login and the driver do not change which database it is
    different = {backup_files.identity_of(parse_url(u)) for u in (
        "postgresql://db.example/memoria", "postgresql://db2.example/memoria", "postgresql://db.example:5433/memoria",
        "postgresql://db.example/memoria2", "mysql://db.example/memoria")}
    assert len(different) == 5


async def test_cli_list_shows_identity_and_filters_by_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = (f"sqlite:///{tmp_path / folder / 'memoria.db'}" for folder in ("a", "b"))
    for url in (first, second):
        (tmp_path / url.rsplit("/", 2)[1]).mkdir()
        await prepare(url)
    shared = tmp_path / "backups"
    mine, other = await create_backup(first, shared), await create_backup(second, shared)
    assert mine is not None and other is not None
    assert await anyio.to_thread.run_sync(cli_main, ["backup", "list", "--backup-dir", str(shared),
                                                     "--database-url", first]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in lines] == [str(mine)]
    assert lines[0].split("\t")[-1] == backup_files.identity_of(parse_url(first))


# -- item 11: database names that look like options, and empty dumps --------------------------------


@pytest.fixture
async def option_named_mysql_db() -> AsyncIterator[str]:
    base = MYSQL_ADMIN_URL.rsplit("/", 1)[0]
    async with connect(MYSQL_ADMIN_URL) as conn:
        await conn.execute("CREATE DATABASE IF NOT EXISTS `--version`")
        await conn.execute("CREATE TABLE IF NOT EXISTS `--version`.t (a INT)")
    try:
        yield f"{base}/--version"
    finally:
        async with connect(MYSQL_ADMIN_URL) as conn:
            await conn.execute("DROP DATABASE IF EXISTS `--version`")


async def test_mysql_database_named_like_an_option_is_refused(
    option_named_mysql_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ConfigurationError, match="refusing database name '--version'"):
        await create_backup(option_named_mysql_db, tmp_path)
    assert list(tmp_path.iterdir()) == []  # no 0-byte "backup"
    code = await anyio.to_thread.run_sync(cli_main, ["backup", "create", "--database-url", option_named_mysql_db,
                                                     "--backup-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == ConfigurationError.exit_code and err.count("\n") == 1 and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("backend", ["postgres", "mysql"])
async def test_a_tool_that_writes_nothing_is_an_error(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A dump tool that exits 0 and writes nothing (here: `true` standing in for it).
    monkeypatch.setenv("PATH", str(_fake_tools(tmp_path / "bin")))
    from memoria_stream.errors import DatabaseError

    with pytest.raises(DatabaseError, match="wrote nothing"):
        await create_backup(db_url, tmp_path / "b")
    assert list((tmp_path / "b").iterdir()) == []


def _fake_tools(folder: Path) -> Path:
    folder.mkdir()
    for name in ("pg_dump", "mariadb-dump", "mysqldump"):
        tool = folder / name
        tool.write_text("#!/bin/sh\nexit 0\n")
        tool.chmod(0o755)
    return folder
