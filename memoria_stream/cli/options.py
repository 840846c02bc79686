"""Options and argument types that several commands share: the database URL, and the resume,
verify and lossy flags of ``import-data`` and ``copy``."""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from typing import TYPE_CHECKING, Any, Iterator

import orjson

from memoria_stream.drivers.urls import resolve_url
from memoria_stream.errors import InputError, IntegrityFailure
from memoria_stream.transfer.preflight_report import MAX_PROBLEMS

if TYPE_CHECKING:  # the parser is built from this module: what only a handler needs is imported there
    from memoria_stream.transfer.preflight_report import PreflightReport
    from memoria_stream.transfer.reports import RunReport
    from memoria_stream.transfer.resume import OnSkipped
    from memoria_stream.transfer.resume_state import Finished
    from memoria_stream.transfer.verify import VerifyReport


def add_database_url(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url", metavar="URL", default=None,
        help="database URL (default: $MEMORIA_DATABASE_URL, then $DATABASE_URL, then sqlite:///memoria.db)",
    )


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def add_allow_lossy(parser: argparse.ArgumentParser) -> None:
    """``--allow-lossy`` (copy and import-data): load values the target's columns would change."""
    parser.add_argument("--allow-lossy", action="store_true",
                        help="load even when target columns would store values changed (DATETIME without "
                             "fractions, FLOAT, TEXT); each such column is reported with its count")


def add_dry_run(parser: argparse.ArgumentParser) -> None:
    """``--dry-run`` and ``--max-problems`` (import-data and copy): check everything, write nothing."""
    parser.add_argument("--dry-run", action="store_true",
                        help="read the whole input through every check the load makes and report what it would "
                             "do and every problem it would meet; nothing is written (exit 0: the load would "
                             "succeed, 3: it would not); with copy --sync: the rows it would insert, update "
                             "and delete")
    parser.add_argument("--max-problems", type=positive_int, default=MAX_PROBLEMS, metavar="N",
                        help=f"with --dry-run: list at most N problems (all are counted; default {MAX_PROBLEMS})")


@contextlib.contextmanager
def dry_run_hint(command: str) -> Iterator[None]:
    """A constraint the target refused names no row; the dry run names every one, with its place."""
    try:
        yield
    except IntegrityFailure as exc:
        first, *details = str(exc).split("\n", 1)  # the error is shown as its first line
        hint = f" (nothing was changed; `{command} --dry-run` lists every row that breaks a constraint, with its place)"
        raise IntegrityFailure("\n".join([first + hint, *details])) from exc


def print_preflight(report: PreflightReport, args: argparse.Namespace) -> int:
    """The dry run's report on stdout (text, or one JSON line per problem and a summary line);
    returns the exit status: 0 when the load would succeed, 3 when it would not."""
    if not getattr(args, "quiet", False):
        if getattr(args, "log_format", "text") == "json":
            for problem in report.problems:
                print(orjson.dumps({"event": "problem", **problem.as_dict()}).decode())
            summary = {k: v for k, v in report.as_dict().items() if k != "problems"}
            print(orjson.dumps({"event": "dry_run", **summary}).decode(), flush=True)
        else:
            print(report.render(), flush=True)
    return 0 if report.ok else InputError.exit_code


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
        await verify_and_print(args.source, resolve_url(args.database_url), moved_tables(report, args), args)


async def verify_and_print(a: str, b: str, tables: list[str], args: argparse.Namespace) -> VerifyReport:
    from memoria_stream.transfer.verify import verify

    report = await verify(a, b, tables=tables or None)
    if not getattr(args, "quiet", False):
        print_verify(report, args, sys.stderr)  # stdout may carry data; the check goes with the summary
    report.raise_for_difference()
    return report


def print_verify(report: VerifyReport, args: argparse.Namespace, out: Any) -> None:
    if getattr(args, "log_format", "text") == "json":
        print(orjson.dumps({"event": "verify", **report.as_dict()}).decode(), file=out, flush=True)
    else:
        print(report.render(), file=out)
        print(f"{'verified: identical' if report.ok else 'verification FAILED'} in {report.seconds:.2f} s", file=out)
