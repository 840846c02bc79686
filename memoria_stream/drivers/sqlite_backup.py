"""SQLite backup and restore through the online backup API, in a worker thread.

Backup copies every page in one step inside one read transaction, so the copy is one consistent
moment even while other connections write (in WAL mode they keep writing meanwhile). Restore runs
the same API the other way round, *into* the live file under SQLite's own locks: every connection
that is open on the database sees the restored content at its next statement, which a raw file copy
(Memoria's ``shutil.copy2``) cannot promise.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path
from typing import Iterator

import anyio.to_thread

from memoria_stream.errors import DatabaseError, InputError
from memoria_stream.private import create_private_file
from memoria_stream.drivers.urls import DatabaseURL

_BUSY_TIMEOUT = 30.0  # seconds a connection waits for a lock before the backup step reports busy


async def backup(url: DatabaseURL, destination: Path) -> None:
    """Copy the live database of ``url`` into the new file ``destination``."""
    source = Path(str(url.database))
    if not source.is_file():
        raise DatabaseError(f"SQLite database file not found: {source}")
    await anyio.to_thread.run_sync(_backup_file, source, destination)


async def restore(url: DatabaseURL, backup_file: Path) -> None:
    """Replace the content of the live database of ``url`` with ``backup_file``."""
    if not backup_file.is_file():
        raise InputError(f"backup file not found: {backup_file}")
    target = Path(str(url.database))
    if not target.parent.is_dir():
        raise DatabaseError(f"SQLite database folder does not exist: {target.parent}")
    await anyio.to_thread.run_sync(_restore_file, backup_file, target)


def _backup_file(source: Path, destination: Path) -> None:
    partial = destination.with_name(destination.name + ".partial")
    try:
        # Created here, owner-only, before SQLite opens it: SQLite would create it with the umask's
        # mode, and its journal takes the mode of the database file.
        os.close(create_private_file(partial))
        with _translated(source), _open(str(source)) as src, _open(str(partial)) as dst:
            src.backup(dst)
        os.replace(partial, destination)  # the final name only ever holds a complete copy
    finally:
        partial.unlink(missing_ok=True)


def _restore_file(backup_file: Path, target: Path) -> None:
    # immutable=1: the backup is read without locks or -wal/-shm files appearing beside it.
    uri = f"{backup_file.resolve().as_uri()}?mode=ro&immutable=1"
    with _translated(backup_file), _open(uri, uri=True) as src:
        src.execute("SELECT count(*) FROM sqlite_master").fetchone()  # not a database -> clear error here
        with _open(str(target)) as dst:
            src.backup(dst)


@contextlib.contextmanager
def _open(target: str, *, uri: bool = False) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(target, timeout=_BUSY_TIMEOUT, uri=uri, isolation_level=None)
    try:
        yield conn
    finally:
        conn.close()


@contextlib.contextmanager
def _translated(path: Path) -> Iterator[None]:
    try:
        yield
    except sqlite3.DatabaseError as exc:
        raise DatabaseError(f"SQLite {path}: {exc}") from exc
