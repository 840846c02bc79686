"""``copy SOURCE_URL TARGET_URL`` and ``verify A B``, plus the ``--verify`` helpers for ``import-data``."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import orjson

from .copy import copy_database
from .errors import InputError
from .progress import add_progress_options, progress_for
from .reports import RunReport
from .urls import mask_url, resolve_url
from .verify import VerifyReport, verify


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
    copy.add_argument("--jobs", "-j", type=_positive, default=1, metavar="N",
                      help="stream up to N tables at once on separate connections (default 1)")
    copy.add_argument("--verify", action="store_true", help="verify the target against the source afterwards")
    copy.add_argument("--quiet", "-q", action="store_true", help="print nothing but errors")
    add_progress_options(copy)
    copy.set_defaults(handler=run_copy)

    check = subparsers.add_parser(
        "verify", help="compare two databases or export files, table by table",
        description="Compare row counts and order-independent checksums per table. A and B are each a "
                    "database URL or an export file (.json, .ndjson, .gz). Exits with status 7 on any difference.",
    )
    check.add_argument("a", metavar="A", help="database URL or export file")
    check.add_argument("b", metavar="B", help="database URL or export file")
    _add_tables(check)
    check.add_argument("--quiet", "-q", action="store_true", help="print nothing; the exit status tells")
    check.add_argument("--log-format", choices=("text", "json"), default="text",
                       help="json: print the report as one JSON object")
    check.set_defaults(handler=run_verify)


def _add_tables(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--table", action="append", dest="tables", metavar="NAME",
                        help="limit to this table (repeatable)")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


async def run_copy(args: argparse.Namespace) -> int:
    progress = progress_for(args)
    async with progress:
        report = await copy_database(
            args.source, args.target, tables=args.tables, truncate=not args.no_truncate, jobs=args.jobs,
            on_batch=progress.on_batch if progress.active else None, on_counts=progress.on_counts)
    progress.summary(report, f"Copied {report.total_rows} rows across {len(report.tables)} tables from "
                             f"{mask_url(args.source)} to {mask_url(args.target)}")
    if args.verify:
        await _verify_and_print(args.source, args.target, list(report.tables), args)
    return 0


async def run_verify(args: argparse.Namespace) -> int:
    report = await verify(args.a, args.b, tables=args.tables)
    if not args.quiet:
        _print(report, args, sys.stdout)
    report.raise_for_difference()
    return 0


# --- import-data --verify (called from commands.py) ----------------------------------------------

def add_verify_flag(parser: argparse.ArgumentParser) -> None:
    """``--verify`` for ``import-data``: compare the file with the target after the import."""
    parser.add_argument("--verify", action="store_true",
                        help="verify the imported tables against the file afterwards (not with SRC -)")


def check_verify_source(args: argparse.Namespace) -> None:
    """Refuse ``--verify`` with stdin before anything is imported: stdin cannot be read twice."""
    if getattr(args, "verify", False) and args.source == "-":
        raise InputError("--verify needs SRC to be a file: stdin cannot be read a second time")


async def verify_after_import(args: argparse.Namespace, report: RunReport) -> None:
    """Run ``verify(SRC, target)`` over the imported tables; raises ``VerificationError`` on a difference."""
    if getattr(args, "verify", False):
        check_verify_source(args)
        await _verify_and_print(args.source, resolve_url(args.database_url), list(report.tables), args)


async def _verify_and_print(a: str, b: str, tables: list[str], args: argparse.Namespace) -> VerifyReport:
    report = await verify(a, b, tables=tables or None)
    if not getattr(args, "quiet", False):
        _print(report, args, sys.stderr)  # stdout may carry data; the check goes with the summary
    report.raise_for_difference()
    return report


def _print(report: VerifyReport, args: argparse.Namespace, out: Any) -> None:
    if getattr(args, "log_format", "text") == "json":
        print(orjson.dumps({"event": "verify", **report.as_dict()}).decode(), file=out, flush=True)
    else:
        print(report.render(), file=out)
        print(f"{'verified: identical' if report.ok else 'verification FAILED'} in {report.seconds:.2f} s", file=out)
