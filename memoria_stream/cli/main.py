"""The ``memoria-stream`` command line: one parser, subcommands contributed by feature modules.

Each feature module exposes ``add_commands(subparsers)``; every subcommand sets ``handler`` to an
async function ``(args) -> int``. Errors become one line on stderr and an exit code per cause.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
import threading
from typing import Any, Sequence

import anyio

from memoria_stream import __version__
from memoria_stream.malloc import one_arena
from memoria_stream.errors import InternalError, MemoriaStreamError

# Feature modules that contribute subcommands, in the order they appear in --help.
_COMMAND_MODULES = (
    "memoria_stream.cli.transfer",
    "memoria_stream.cli.copy",
    "memoria_stream.cli.migrate",
    "memoria_stream.cli.backup",
    "memoria_stream.cli.serve",
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


def main(argv: Sequence[str] | None = None) -> int:
    one_arena()  # before any thread starts: peak RSS stays flat as runs grow
    args = build_parser().parse_args(argv)
    stopped: list[int] = []  # the signal that stopped the run, if one did
    # A dropped connection can leave asyncio logging "Future exception was never retrieved" for a
    # driver-internal future after the real error was reported: the CLI's contract is one line.
    logging.getLogger("asyncio").addHandler(logging.NullHandler())
    logging.getLogger("asyncio").propagate = False
    try:
        result = anyio.run(_run, args, stopped)
    except KeyboardInterrupt:
        return _interrupted(signal.SIGINT)
    except MemoriaStreamError as exc:
        if stopped:  # an error raised while unwinding from the signal is a consequence of it
            return _interrupted(stopped[0])
        _error(str(exc))
        return exc.exit_code
    except BrokenPipeError:
        # The reader of our stdout went away (e.g. `| head`); nothing more to say.
        _silence_stdout()
        return 141
    except Exception as exc:  # a bug: still one line, unless asked for the traceback
        if os.environ.get("MEMORIA_STREAM_DEBUG"):
            raise
        _error(f"internal error: {type(exc).__name__}: {exc} (set MEMORIA_STREAM_DEBUG=1 for a traceback)")
        return InternalError.exit_code
    if stopped:
        return _interrupted(stopped[0])
    return int(result or 0)


async def _run(args: argparse.Namespace, stopped: list[int]) -> Any:
    # SIGINT and SIGTERM cancel the command's scope: transactions roll back (shielded), partial
    # output files are removed, connections close; main() then exits 128 + the signal number.
    outcome: dict[str, Any] = {}
    async with anyio.create_task_group() as group:
        if threading.current_thread() is threading.main_thread():  # signals reach the main thread only
            group.start_soon(_watch_signals, group.cancel_scope, stopped)
        try:
            outcome["result"] = await args.handler(args)
        except Exception as exc:  # kept out of the task group so it is not wrapped in a group
            outcome["error"] = exc
        group.cancel_scope.cancel()
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("result")


async def _watch_signals(scope: anyio.CancelScope, stopped: list[int]) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            stopped.append(int(signum))
            scope.cancel()
            return


def _interrupted(signum: int) -> int:
    name = signal.Signals(signum).name
    _error(f"interrupted by {name}; stopped cleanly: the open transaction was rolled back and no partial "
           "output file was left")
    return EXIT_INTERRUPTED if signum == signal.SIGINT else 128 + signum


def _error(message: str) -> None:
    first_line = message.strip().splitlines()[0] if message.strip() else "failed"
    print(f"memoria-stream: error: {first_line}", file=sys.stderr)


def _silence_stdout() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def entry() -> None:  # pragma: no cover - console script shim
    signal.signal(signal.SIGPIPE, signal.SIG_DFL) if hasattr(signal, "SIGPIPE") else None
    sys.exit(main())
