"""Backups that restore: one entry point per direction over every backend, and ``memoria-stream backup``.

SQLite uses the online backup API (``backup_sqlite``), PostgreSQL and MySQL/MariaDB their native dump
tools (``backup_native``). An in-memory SQLite database (``sqlite://``) has nothing to back up: both
directions are no-ops there, as in Memoria.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from memoria_stream.backup import files as backup_files
from memoria_stream.backup.files import BackupFile, list_backups
from memoria_stream.errors import InputError
from memoria_stream.codecs.streams import make_private_dirs
from memoria_stream.drivers import backup_tools
from memoria_stream.drivers.urls import DatabaseURL, parse_url, resolve_url

__all__ = ["BackupFile", "create_backup", "list_backups", "restore_backup", "add_commands"]


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


# -- command line ---------------------------------------------------------------------------------


def add_commands(subparsers: Any) -> None:
    """``memoria-stream backup create|restore|list``."""
    from memoria_stream.cli.main import add_database_url

    parser = subparsers.add_parser("backup", help="back up, restore and list database backups")
    actions = parser.add_subparsers(dest="backup_command", required=True, metavar="ACTION")

    create = actions.add_parser("create", help="back up every table of the database into a new file")
    add_database_url(create)
    _add_dir(create)
    create.add_argument("--keep", type=_positive, metavar="N", default=None,
                        help="afterwards keep only the N newest backups of this database")
    create.set_defaults(handler=_create_command)

    restore = actions.add_parser("restore", help="restore a backup file into the database")
    restore.add_argument("file", metavar="FILE", help="a backup file written by 'backup create' or the guard")
    add_database_url(restore)
    restore.set_defaults(handler=_restore_command)

    listing = actions.add_parser("list", help="list the backup files in the backup directory, oldest first")
    _add_dir(listing)
    # No environment default here: without the option every database's backups are listed.
    listing.add_argument("--database-url", metavar="URL", default=None,
                         help="list only the backups of this database")
    listing.set_defaults(handler=_list_command)


def _add_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backup-dir", metavar="DIR", default=None,
                        help="where backups are kept (default: backups/ in the working directory)")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


async def _create_command(args: argparse.Namespace) -> int:
    url = parse_url(resolve_url(args.database_url))
    path = await create_backup(url, args.backup_dir, keep=args.keep)
    print(f"{url.masked()}: in-memory database, nothing to back up" if path is None else str(path))
    return 0


async def _restore_command(args: argparse.Namespace) -> int:
    url = parse_url(resolve_url(args.database_url))
    if not Path(args.file).is_file():
        raise InputError(f"backup file not found: {args.file}")
    await restore_backup(url, args.file)
    print(f"restored {args.file} into {url.masked()}")
    return 0


async def _list_command(args: argparse.Namespace) -> int:
    url = parse_url(args.database_url) if args.database_url else None
    for item in list_backups(backup_files.backup_dir(args.backup_dir), url):
        created = item.created.strftime("%Y-%m-%d %H:%M:%S.%f UTC")
        identity = item.identity or "-"  # which database: backup_files.identity_of
        print(f"{item.path}\t{item.backend}\t{item.kind}\t{created}\t{item.size}\t{identity}")
    return 0
