"""Backups that restore: one entry point per direction over every backend, and ``memoria-stream backup``.

SQLite uses the online backup API (``backup_sqlite``), PostgreSQL and MySQL/MariaDB their native dump
tools (``backup_native``). An in-memory SQLite database (``sqlite://``) has nothing to back up: both
directions are no-ops there, as in Memoria.
"""

from __future__ import annotations

import os
from pathlib import Path

from memoria_stream.backup import files as backup_files
from memoria_stream.backup.files import BackupFile, list_backups
from memoria_stream.errors import InputError
from memoria_stream.private import make_private_dirs
from memoria_stream.drivers import backup_tools
from memoria_stream.drivers.urls import DatabaseURL, parse_url

__all__ = ["BackupFile", "create_backup", "list_backups", "restore_backup"]


async def create_backup(
    url: str | DatabaseURL,
    backup_dir: str | os.PathLike[str] | None = None,
    *,
    keep: int | None = None,
    kind: str = "backup",
) -> Path | None:
    """Back up every table of the database at ``url`` into a new file under ``backup_dir``.

    ``backup_dir`` defaults to ``backups/`` in the working directory and is created when missing.
    With ``keep=N`` only the N newest backups of this kind of this database are kept afterwards.
    Returns the new file, or ``None`` for an in-memory SQLite database (nothing to back up).
    """
    parsed = _parsed(url)
    if parsed.is_memory:
        return None
    directory = backup_files.backup_dir(backup_dir)
    make_private_dirs(directory)
    destination = backup_files.new_backup_path(directory, parsed, kind)
    await backup_tools(parsed).backup(parsed, destination)
    if keep is not None:
        backup_files.prune(directory, parsed, keep, kind)
    return destination


async def restore_backup(url: str | DatabaseURL, backup_file: str | os.PathLike[str]) -> None:
    """Restore ``backup_file`` into the database at ``url``: every object it holds gets its backed-up state.

    The file's extension must fit the backend (``.sqlite3``, ``.dump`` for PostgreSQL, ``.sql`` for
    MySQL/MariaDB). A no-op for an in-memory SQLite database.
    """
    parsed = _parsed(url)
    if parsed.is_memory:
        return
    path = Path(backup_file)
    belongs_to = backup_files.backend_of(path)
    if belongs_to != parsed.backend:
        expected = backup_files.EXTENSIONS[parsed.backend]
        raise InputError(f"{path.name} is not a {parsed.backend} backup (expected a .{expected} file)")
    await backup_tools(parsed).restore(parsed, path)


def _parsed(url: str | DatabaseURL) -> DatabaseURL:
    return parse_url(url) if isinstance(url, str) else url


