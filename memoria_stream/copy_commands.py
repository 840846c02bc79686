"""``copy SOURCE_URL TARGET_URL``, ``verify A B`` and ``verify FILE``, plus the ``--verify`` helpers for ``import-data``."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import orjson

from .completeness import FileReport, verify_file
from .copy import copy_database
from .errors import InputError
from .progress import add_progress_options, progress_for
from .reports import RunReport
from .resume import OnSkipped, copy_per_table
from .resume_state import Finished
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
    add_resume_flags(copy)
    add_allow_lossy(copy)
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


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


async def run_copy(args: argparse.Namespace) -> int:
    check_resume_args(args)
    progress = progress_for(args)
    async with progress:
        on_batch = progress.on_batch if progress.active else None
        if args.commit_per_table:
            report = await copy_per_table(args.source, args.target, tables=args.tables, resume=args.resume,
                                          on_batch=on_batch, on_counts=progress.on_counts,
                                          on_skipped=skipped_printer(args), allow_lossy=args.allow_lossy)
        else:
            report = await copy_database(
                args.source, args.target, tables=args.tables, truncate=not args.no_truncate, jobs=args.jobs,
                on_batch=on_batch, on_counts=progress.on_counts, allow_lossy=args.allow_lossy)
    progress.summary(report, f"Copied {report.total_rows} rows across {len(report.tables)} tables"
                             f"{skipped_note(report, args)} from {mask_url(args.source)} to {mask_url(args.target)}")
    if args.verify:
        await _verify_and_print(args.source, args.target, moved_tables(report, args), args)
    return 0


async def run_verify(args: argparse.Namespace) -> int:
    if args.b is None:
        return await _verify_one_file(args)
    report = await verify(args.a, args.b, tables=args.tables)
    if not args.quiet:
        _print(report, args, sys.stdout)
    report.raise_for_difference()
    return 0


async def _verify_one_file(args: argparse.Namespace) -> int:
    if "://" in args.a:
        raise InputError("verify with one argument checks an export file; to compare databases give A and B")
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


# --- --commit-per-table / --resume (copy here; import-data through commands.py) ---------------------

def add_allow_lossy(parser: argparse.ArgumentParser) -> None:
    """``--allow-lossy`` (copy and import-data): load values the target's columns would change."""
    parser.add_argument("--allow-lossy", action="store_true",
                        help="load even when target columns would store values changed (DATETIME without "
                             "fractions, FLOAT, TEXT); each such column is reported with its count")


def add_resume_flags(parser: argparse.ArgumentParser) -> None:
    """``--commit-per-table`` and ``--resume`` (see ``resume.py`` and the README, Reliability)."""
    parser.add_argument("--commit-per-table", action="store_true",
                        help="commit each table on its own and record it on the target (not atomic: for very "
                             "large moves; see the README, Reliability)")
    parser.add_argument("--resume", action="store_true",
                        help="with --commit-per-table: skip the tables an earlier run of the same move recorded "
                             "as finished, when their count and checksum on the target still match")


def check_resume_args(args: argparse.Namespace) -> None:
    """Refuse flag combinations that cannot work, before anything is read or changed."""
    if args.resume and not args.commit_per_table:
        raise InputError("--resume needs --commit-per-table (the atomic default has nothing to resume)")
    if not args.commit_per_table:
        return
    if args.no_truncate:
        raise InputError("--commit-per-table empties each table it loads; it cannot be combined with --no-truncate")
    if getattr(args, "jobs", 1) > 1:
        raise InputError("--commit-per-table loads one table at a time; it cannot be combined with --jobs")
    if args.source == "-":
        raise InputError("--commit-per-table needs SRC to be a file: it reads the input once per table, "
                         "and stdin cannot be read a second time")


def skipped_printer(args: argparse.Namespace) -> OnSkipped:
    """Says which tables a resumed run skips, on stderr, before it loads anything."""
    def show(skipped: list[Finished]) -> None:
        if args.quiet or not args.resume:
            return
        if args.log_format == "json":
            print(orjson.dumps({"time": time.time(), "event": "tables_skipped", "tables": [
                {"table": f.table, "rows": f.rows, "checksum": f.checksum, "finished_at": f.finished_at}
                for f in skipped]}).decode(), file=sys.stderr, flush=True)
        elif skipped:
            print(f"skipped as already finished (count and checksum unchanged): "
                  f"{', '.join(f.table for f in skipped)}", file=sys.stderr, flush=True)
        else:
            print("resume: no table of this move is recorded as finished; loading every table",
                  file=sys.stderr, flush=True)
    return show


def skipped_note(report: RunReport, args: argparse.Namespace) -> str:
    skipped = _skipped(report, args)
    return f" (skipped {len(skipped)} already finished)" if skipped else ""


def moved_tables(report: RunReport, args: argparse.Namespace) -> list[str]:
    """The tables a run was about: those it loaded and those it skipped as already finished."""
    return list(report.tables) + _skipped(report, args)


def _skipped(report: RunReport, args: argparse.Namespace) -> list[str]:
    # Only a --commit-per-table run writes this key; an atomic import's metadata is the file's own.
    if not getattr(args, "commit_per_table", False):
        return []
    return list(report.metadata["commit_per_table"]["skipped"])


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
        await _verify_and_print(args.source, resolve_url(args.database_url), moved_tables(report, args), args)


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
