"""``memoria-stream backup create | restore | list``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from memoria_stream.backup import files as backup_files
from memoria_stream.backup.actions import create_backup, restore_backup
from memoria_stream.backup.files import list_backups
from memoria_stream.cli.options import add_database_url, positive_int
from memoria_stream.drivers.urls import parse_url, resolve_url
from memoria_stream.errors import InputError


def add_commands(subparsers: Any) -> None:
    """``memoria-stream backup create|restore|list``."""
    parser = subparsers.add_parser("backup", help="back up, restore and list database backups")
    actions = parser.add_subparsers(dest="backup_command", required=True, metavar="ACTION")

    create = actions.add_parser("create", help="back up every table of the database into a new file")
    add_database_url(create)
    _add_dir(create)
    create.add_argument("--keep", type=positive_int, metavar="N", default=None,
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
