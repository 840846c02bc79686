"""``export-data`` and ``import-data`` (aliases ``export`` and ``import``)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from memoria_stream.codecs import DEFAULT_MAX_LINE, FORMATS
from memoria_stream.cli.options import (add_allow_lossy, add_dry_run, add_resume_flags, add_verify_flag, check_resume_args,
                                        check_verify_source, dry_run_hint, print_preflight, skipped_note,
                                        skipped_printer, verify_after_import)
from memoria_stream.cli.progress import Progress, add_progress_options, progress_for
from memoria_stream.drivers.urls import mask_url, resolve_url

# The engine is imported by the handler that runs: every command's parser is built at each start,
# and loading only what the chosen command needs makes a short run start sooner.
if TYPE_CHECKING:
    from memoria_stream.transfer.reports import RunReport


def add_commands(subparsers: Any) -> None:
    from memoria_stream.cli.options import add_database_url

    export = subparsers.add_parser(
        "export-data", aliases=["export"], help="export tables to a JSON or NDJSON file (or - for stdout)",
        description="Export Memoria's tables to JSON (indented) or NDJSON, read inside one consistent snapshot.",
    )
    export.add_argument("destination", metavar="DEST", help="output file (.gz compresses) or - for stdout")
    add_database_url(export)
    export.add_argument("--format", choices=FORMATS, default=None,
                        help="json or ndjson (default: from DEST's extension, else json)")
    _add_common(export)
    export.set_defaults(handler=run_export)

    imp = subparsers.add_parser(
        "import-data", aliases=["import"], help="import a JSON or NDJSON file (or - for stdin)",
        description="Import a Memoria export atomically: on any error the target is left as it was.",
    )
    imp.add_argument("source", metavar="SRC", help="input file (.gz understood) or - for stdin")
    add_database_url(imp)
    imp.add_argument("--format", choices=FORMATS, default=None, help="json or ndjson (default: sniffed from content)")
    imp.add_argument("--no-truncate", action="store_true",
                     help="append instead of emptying the imported tables first (ids must not collide)")
    imp.add_argument("--max-line-bytes", type=int, default=DEFAULT_MAX_LINE, metavar="N",
                     help="refuse an NDJSON line longer than N bytes (default: 64 MiB)")
    imp.add_argument("--accept-altered", action="store_true",
                     help="import even when the rows do not match the file's header counts or trailer (a file "
                          "edited on purpose); a warning says so")
    add_verify_flag(imp)
    add_resume_flags(imp)
    add_allow_lossy(imp)
    add_dry_run(imp)
    _add_common(imp)
    imp.set_defaults(handler=run_import)


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--table", action="append", dest="tables", metavar="NAME",
                        help="limit to this table (repeatable)")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress display and no summary")
    add_progress_options(parser)


async def run_export(args: argparse.Namespace) -> int:
    from memoria_stream.transfer.files import export_data

    url = resolve_url(args.database_url)
    progress = progress_for(args)
    async with progress:
        report = await export_data(args.destination, database_url=url, format=args.format, tables=args.tables,
                                   on_batch=progress.on_batch if progress.active else None,
                                   on_counts=progress.on_counts)
    where = "stdout" if args.destination == "-" else args.destination
    progress.summary(report, f"Exported {report.total_rows} rows across {len(report.tables)} tables "
                             f"from {mask_url(url)} to {where}")
    return 0


async def run_import(args: argparse.Namespace) -> int:
    url = resolve_url(args.database_url)
    if args.dry_run:
        return await _dry_run_import(args, url)
    check_verify_source(args)
    check_resume_args(args)
    progress = progress_for(args)
    with dry_run_hint("import-data"):
        report = await _import(args, url, progress)
    progress.summary(report, f"Imported {report.total_rows} rows into {len(report.tables)} tables"
                             f"{skipped_note(report, args)} of {mask_url(url)} "
                             f"(truncate={'no' if args.no_truncate else 'yes'}, format={report.format})")
    await verify_after_import(args, report)
    return 0


async def _import(args: argparse.Namespace, url: str, progress: Progress) -> RunReport:
    from memoria_stream.transfer.files import import_data

    async with progress:
        on_batch = progress.on_batch if progress.active else None
        if args.commit_per_table:
            from memoria_stream.transfer.resume import import_per_table

            return await import_per_table(args.source, database_url=url, format=args.format, tables=args.tables,
                                            resume=args.resume, max_line_bytes=args.max_line_bytes,
                                            on_batch=on_batch, on_counts=progress.on_counts,
                                            on_skipped=skipped_printer(args), allow_lossy=args.allow_lossy,
                                            accept_altered=args.accept_altered)
        return await import_data(args.source, database_url=url, format=args.format, tables=args.tables,
                                 truncate=not args.no_truncate, max_line_bytes=args.max_line_bytes,
                                 on_batch=on_batch, on_counts=progress.on_counts, allow_lossy=args.allow_lossy,
                                 accept_altered=args.accept_altered)


async def _dry_run_import(args: argparse.Namespace, url: str) -> int:
    from memoria_stream.transfer.preflight import preflight_import

    progress = progress_for(args)
    async with progress:
        report = await preflight_import(args.source, database_url=url, format=args.format, tables=args.tables,
                                        truncate=not args.no_truncate, max_line_bytes=args.max_line_bytes,
                                        allow_lossy=args.allow_lossy, accept_altered=args.accept_altered,
                                        max_problems=args.max_problems, on_counts=progress.on_counts,
                                        on_batch=progress.on_batch if progress.active else None)
    return print_preflight(report, args)
