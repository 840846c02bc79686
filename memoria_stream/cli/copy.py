"""``copy SOURCE_URL TARGET_URL`` (also ``--sync``), ``verify A B`` and ``verify FILE``."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

import orjson

from memoria_stream.cli.options import (add_allow_lossy, add_dry_run, dry_run_hint, print_preflight, add_resume_flags, check_resume_args,
                                        moved_tables, positive_int, print_verify, skipped_note, skipped_printer,
                                        verify_and_print)
from memoria_stream.errors import InputError
from memoria_stream.cli.progress import Progress, add_progress_options, progress_for
from memoria_stream.drivers.urls import mask_url

# As in transfer.py: each handler imports the engine it runs.
if TYPE_CHECKING:
    from memoria_stream.transfer.completeness import FileReport
    from memoria_stream.transfer.reports import RunReport


def add_commands(subparsers: Any) -> None:
    copy = subparsers.add_parser(
        "copy", help="copy tables straight from one database into another (no file in between)",
        description="Copy Memoria's tables from SOURCE_URL to TARGET_URL: the source is read inside one "
                    "consistent snapshot, the target schema is created when missing, and a failure leaves "
                    "the target as it was.",
    )
    copy.add_argument("source", metavar="SOURCE_URL", help="database to read (any backend)")
    copy.add_argument("target", metavar="TARGET_URL", help="database to write (any backend)")
    _add_tables(copy)
    copy.add_argument("--no-truncate", action="store_true",
                      help="append instead of emptying the copied tables first (ids must not collide)")
    copy.add_argument("--jobs", "-j", type=positive_int, default=1, metavar="N",
                      help="stream up to N tables at once on separate connections (default 1)")
    copy.add_argument("--verify", action="store_true", help="verify the target against the source afterwards")
    copy.add_argument("--sync", action="store_true",
                      help="write only the difference: insert, update and delete the rows whose primary key or "
                           "digest differs (one target transaction); tables missing on the target are created")
    add_resume_flags(copy)
    add_allow_lossy(copy)
    add_dry_run(copy)
    copy.add_argument("--quiet", "-q", action="store_true", help="print nothing but errors")
    add_progress_options(copy)
    copy.set_defaults(handler=run_copy)

    check = subparsers.add_parser(
        "verify", help="compare two databases or export files, table by table; or check one file alone",
        description="Compare row counts and order-independent checksums per table. A and B are each a "
                    "database URL or an export file (.json, .ndjson, .gz). With one argument FILE, check the "
                    "file against its own header counts and trailer (no database). Exits with status 7 on any "
                    "difference or damage.",
    )
    check.add_argument("a", metavar="A", help="database URL or export file (alone: the file to check)")
    check.add_argument("b", metavar="B", nargs="?", default=None, help="database URL or export file")
    _add_tables(check)
    check.add_argument("--quiet", "-q", action="store_true", help="print nothing; the exit status tells")
    check.add_argument("--log-format", choices=("text", "json"), default="text",
                       help="json: print the report as one JSON object")
    check.set_defaults(handler=run_verify)


def _add_tables(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--table", action="append", dest="tables", metavar="NAME",
                        help="limit to this table (repeatable)")


async def run_copy(args: argparse.Namespace) -> int:
    # --dry-run previews what runs without it: a sync's difference, or a full copy's checks.
    if args.sync:
        return await _run_sync(args)
    if args.dry_run:
        return await _dry_run_copy(args)
    check_resume_args(args)
    progress = progress_for(args)
    with dry_run_hint("copy"):
        report = await _copy(args, progress)
    progress.summary(report, f"Copied {report.total_rows} rows across {len(report.tables)} tables"
                             f"{skipped_note(report, args)} from {mask_url(args.source)} to {mask_url(args.target)}")
    if args.verify:
        await verify_and_print(args.source, args.target, moved_tables(report, args), args)
    return 0


async def _copy(args: argparse.Namespace, progress: Progress) -> RunReport:
    from memoria_stream.transfer.copy import copy_database

    async with progress:
        on_batch = progress.on_batch if progress.active else None
        if args.commit_per_table:
            from memoria_stream.transfer.resume import copy_per_table

            return await copy_per_table(args.source, args.target, tables=args.tables, resume=args.resume,
                                        on_batch=on_batch, on_counts=progress.on_counts,
                                        on_skipped=skipped_printer(args), allow_lossy=args.allow_lossy)
        return await copy_database(args.source, args.target, tables=args.tables, truncate=not args.no_truncate,
                                   jobs=args.jobs, on_batch=on_batch, on_counts=progress.on_counts,
                                   allow_lossy=args.allow_lossy)


def _check_sync_args(args: argparse.Namespace) -> None:
    """Refuse flags that mean something else than a sync, before anything is read."""
    clashing = [flag for flag, used in (("--no-truncate", args.no_truncate), ("--jobs", args.jobs > 1),
                                        ("--commit-per-table", args.commit_per_table)) if used]
    if clashing:
        raise InputError(f"--sync writes the difference in one transaction; it cannot be combined with "
                         f"{', '.join(clashing)}")


async def _run_sync(args: argparse.Namespace) -> int:
    from memoria_stream.transfer.sync import sync_database

    _check_sync_args(args)
    progress = progress_for(args)
    async with progress:
        report = await sync_database(args.source, args.target, tables=args.tables, dry_run=args.dry_run,
                                     on_batch=progress.on_batch if progress.active else None,
                                     on_counts=progress.on_counts, allow_lossy=args.allow_lossy)
    if not args.quiet:  # on stderr, like copy's summary: stdout carries only data
        if args.log_format == "json":
            print(orjson.dumps({"event": "summary", "headline": report.headline(), **report.as_dict()}).decode(),
                  file=sys.stderr, flush=True)
        else:
            print(report.render(), file=sys.stderr, flush=True)
            for warning in report.warnings:
                print(f"warning: {warning}", file=sys.stderr)
    if args.verify and not args.dry_run:
        await verify_and_print(args.source, args.target, list(report.tables), args)
    return 0


async def _dry_run_copy(args: argparse.Namespace) -> int:
    from memoria_stream.transfer.preflight import preflight_copy

    progress = progress_for(args)
    async with progress:
        report = await preflight_copy(args.source, args.target, tables=args.tables, truncate=not args.no_truncate,
                                      allow_lossy=args.allow_lossy, max_problems=args.max_problems,
                                      on_counts=progress.on_counts,
                                      on_batch=progress.on_batch if progress.active else None)
    return print_preflight(report, args)


async def run_verify(args: argparse.Namespace) -> int:
    from memoria_stream.transfer.verify import verify

    if args.b is None:
        return await _verify_one_file(args)
    report = await verify(args.a, args.b, tables=args.tables)
    if not args.quiet:
        print_verify(report, args, sys.stdout)
    report.raise_for_difference()
    return 0


# --- --commit-per-table / --resume (copy here; import-data through commands.py) ---------------------


async def _verify_one_file(args: argparse.Namespace) -> int:
    if "://" in args.a:
        raise InputError("verify with one argument checks an export file; to compare databases give A and B")
    from memoria_stream.transfer.completeness import verify_file

    report = await verify_file(args.a, tables=args.tables)
    if not args.quiet:
        _print_file(report, args)
    report.raise_for_damage()
    return 0


def _print_file(report: FileReport, args: argparse.Namespace) -> None:
    if args.log_format == "json":
        print(orjson.dumps({"event": "verify_file", **report.as_dict()}).decode(), flush=True)
        return
    print(report.render())
    print(f"{'intact' if report.ok else 'DAMAGED'} in {report.seconds:.2f} s")
