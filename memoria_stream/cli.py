"""The ``memoria-stream`` command line: one parser, subcommands contributed by feature modules.

Each feature module exposes ``add_commands(subparsers)``; every subcommand sets ``handler`` to an
async function ``(args) -> int``. Errors become one line on stderr and an exit code per cause.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
from typing import Any, Sequence

import anyio

from . import __version__
from .errors import MemoriaStreamError

# Feature modules that contribute subcommands, in the order they appear in --help.
_COMMAND_MODULES = (
    "memoria_stream.commands",
    "memoria_stream.migrations",
    "memoria_stream.backup",
    "memoria_stream.api.commands",
)

EXIT_INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="memoria-stream",
        description="Stream Memoria's data between SQLite, PostgreSQL and MySQL/MariaDB, and keep it safe.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if not exc.name or not name.startswith(exc.name):
                raise
            continue  # feature not built yet
        module.add_commands(subparsers)
    return parser


def add_database_url(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url", metavar="URL", default=None,
        help="database URL (default: $MEMORIA_DATABASE_URL, then $DATABASE_URL, then sqlite:///memoria.db)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(anyio.run(_run, args) or 0)
    except KeyboardInterrupt:
        _error("interrupted; the target was rolled back")
        return EXIT_INTERRUPTED
    except MemoriaStreamError as exc:
        _error(str(exc))
        return exc.exit_code
    except BrokenPipeError:
        # The reader of our stdout went away (e.g. `| head`); nothing more to say.
        _silence_stdout()
        return 141


async def _run(args: argparse.Namespace) -> Any:
    return await args.handler(args)


def _error(message: str) -> None:
    first_line = message.strip().splitlines()[0] if message.strip() else "failed"
    print(f"memoria-stream: error: {first_line}", file=sys.stderr)


def _silence_stdout() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def entry() -> None:  # pragma: no cover - console script shim
    signal.signal(signal.SIGPIPE, signal.SIG_DFL) if hasattr(signal, "SIGPIPE") else None
    sys.exit(main())
