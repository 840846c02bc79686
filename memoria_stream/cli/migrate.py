"""``memoria-stream migrate list`` and ``migrate run``: each script in its own process, each success recorded."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import anyio

from memoria_stream.cli.options import add_database_url
from memoria_stream.drivers.urls import mask_url, resolve_url
from memoria_stream.errors import InputError, MemoriaStreamError
from memoria_stream.migrations.discover import (
    ENV_DIR, MigrationFailed, MigrationScript, discover, find, migrations_root)
from memoria_stream.migrations.process import run_script_process
from memoria_stream.migrations.record import applied_migrations, checksum, record_applied


def add_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``migrate list`` and ``migrate run``."""
    migrate = subparsers.add_parser("migrate", help="list and run schema migration scripts")
    actions = migrate.add_subparsers(dest="migrate_command", required=True, metavar="ACTION")

    listing = actions.add_parser("list", help="list the migration scripts (and their state when the DB answers)")
    _add_common(listing)
    listing.set_defaults(handler=list_command)

    run = actions.add_parser("run", help="run one migration script, or every pending one with --all")
    target = run.add_mutually_exclusive_group(required=True)
    target.add_argument("name", nargs="?", metavar="NAME", help="script name (file stem) or filename")
    target.add_argument("--all", action="store_true", help="run every pending non-archived script in name order")
    _add_common(run)
    run.add_argument("--dry-run", action="store_true", help="show what would run, change nothing")
    run.set_defaults(handler=run_command)


def _add_common(parser: argparse.ArgumentParser) -> None:
    add_database_url(parser)
    parser.add_argument("--include-archived", action="store_true", help="also consider scripts under archive/")
    parser.add_argument("--migrations-dir", metavar="DIR", default=None,
                        help=f"folder of scripts (default: ${ENV_DIR}, then the packaged scripts)")


async def list_command(args: argparse.Namespace) -> int:
    """Print one line per script: name, state when known, description, ``(archived)``, errors."""
    root = migrations_root(args.migrations_dir)
    scripts = discover(root, include_archived=args.include_archived)
    if not scripts:
        print(f"No migrations discovered in {root}.")
        return 0
    url = resolve_url(args.database_url)
    applied = await _applied_or_none(url)
    width = max(len(m.name) for m in scripts)
    for script in scripts:
        print(_list_line(script, width, applied))
    if applied is not None:
        pending = sum(1 for m in scripts if m.name not in applied)
        print(f"{len(scripts) - pending} applied, {pending} pending on {mask_url(url)}")
    return 0


def _list_line(script: MigrationScript, width: int, applied: dict[str, str] | None) -> str:
    parts = [script.name.ljust(width)]
    if applied is not None:
        parts.append(_state(script, applied).ljust(7))
    if script.error:
        parts.append(f"! {script.error}")
    elif script.description:
        parts.append(script.description)
    line = "  ".join(parts)
    return f"{line} (archived)" if script.archived else line.rstrip()


def _state(script: MigrationScript, applied: dict[str, str]) -> str:
    if script.name not in applied:
        return "pending"
    return "applied" if applied[script.name] == checksum(script.path) else "changed"


async def _applied_or_none(url: str) -> dict[str, str] | None:
    """The applied migrations, or None when the database cannot be reached quickly."""
    with anyio.move_on_after(5):
        try:
            return await applied_migrations(url)
        except MemoriaStreamError:
            return None
    return None


async def run_command(args: argparse.Namespace) -> int:
    """Run one script (or every pending one) in its own process, recording each success."""
    root = migrations_root(args.migrations_dir)
    url = resolve_url(args.database_url)
    if args.all:
        scripts = await _pending(root, url, dry_run=args.dry_run)
    else:
        scripts = [find(args.name, root, include_archived=args.include_archived)]
    if args.all and not scripts:
        print(f"No pending migrations for {mask_url(url)}.")
    for script in scripts:
        await _run_one(script, url, dry_run=args.dry_run)
    return 0


async def _pending(root: Path, url: str, *, dry_run: bool) -> list[MigrationScript]:
    scripts = discover(root)  # --all never runs archived scripts
    broken = [m for m in scripts if m.error]
    if broken:
        raise InputError(f"migration {broken[0].name} cannot be parsed: {broken[0].error}")
    applied = await _applied_or_none(url) if dry_run else await applied_migrations(url)
    return [m for m in scripts if m.name not in (applied or {})]


async def _run_one(script: MigrationScript, url: str, *, dry_run: bool) -> None:
    if dry_run:
        print(f"Dry run: would execute {script.name} located at {script.path} against {mask_url(url)}.")
        return
    print(f"Running migration {script.name} ({script.path}) against {mask_url(url)}", flush=True)
    started = time.monotonic()
    status, reason = await run_script_process(script.path, url)
    if status != 0:
        raise MigrationFailed(f"migration {script.name} failed (exit status {status}): {reason or 'no message'}")
    duration_ms = int((time.monotonic() - started) * 1000)
    await record_applied(url, script.name, script.path, duration_ms)
    print(f"Executed migration '{script.name}' against {mask_url(url)} in {duration_ms} ms.", flush=True)

