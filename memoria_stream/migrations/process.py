"""Run one migration script in a child process and stream its output through ours."""

from __future__ import annotations

import codecs
import os
import subprocess
import sys
from pathlib import Path
from typing import TextIO

import anyio
from anyio.abc import ByteReceiveStream

# The folder that holds the memoria_stream package, so a child finds it even from a bare checkout.
_PACKAGE_PARENT = Path(__file__).resolve().parents[2]
_TAIL_CHARS = 4096


class _Tail:
    """The end of what a stream printed, to name the reason of a failure."""

    def __init__(self) -> None:
        self.text = ""

    def feed(self, chunk: str) -> None:
        self.text = (self.text + chunk)[-_TAIL_CHARS:]

    def last_line(self) -> str:
        lines = [line.strip() for line in self.text.splitlines() if line.strip()]
        return lines[-1] if lines else ""


def child_environment(url: str) -> dict[str, str]:
    """Our environment with ``DATABASE_URL`` set for the child only (and nothing that overrides it)."""
    env = dict(os.environ)
    env.pop("MEMORIA_DATABASE_URL", None)  # a script resolving the URL must land on the same database
    env["DATABASE_URL"] = url
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_PACKAGE_PARENT), env.get("PYTHONPATH")) if p)
    return env


async def run_script_process(path: Path, url: str) -> tuple[int, str]:
    """Run ``path`` with this interpreter; return its exit status and the last line it printed.

    The last stderr line is the reason of a failure (stdout's when stderr is silent). If we are
    cancelled, anyio kills the child before the cancellation goes on.
    """
    out_tail, err_tail = _Tail(), _Tail()
    process = await anyio.open_process(
        [sys.executable, str(path)], stdin=subprocess.DEVNULL, env=child_environment(url), cwd=os.getcwd())
    async with process:
        async with anyio.create_task_group() as tg:
            assert process.stdout is not None and process.stderr is not None
            tg.start_soon(_pump, process.stdout, sys.stdout, out_tail)
            tg.start_soon(_pump, process.stderr, sys.stderr, err_tail)
        status = await process.wait()
    return status, err_tail.last_line() or out_tail.last_line()


async def _pump(source: ByteReceiveStream, sink: TextIO, tail: _Tail) -> None:
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    async for chunk in source:
        text = decoder.decode(chunk)
        tail.feed(text)
        sink.write(text)
        sink.flush()
    rest = decoder.decode(b"", final=True)
    tail.feed(rest)
    sink.write(rest)
    sink.flush()
