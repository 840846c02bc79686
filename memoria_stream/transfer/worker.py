"""A worker process that reads the same database on another core: it scans one side of a
``--sync`` (``keyspool.scan``), or encodes slices of a table for an export (``export.encode_slice``).

Hashing and encoding rows are Python work and one process gets one core. For ``--sync`` the target
is scanned in a worker while this process scans the source; where the source's fingerprints are
computed here too (SQLite), a second worker takes a share of the source's rows. An export of SQLite
shares the slices of each table with a worker, each taking the next as it frees. Such a worker must
read the very moment this process reads, so it starts its snapshot only when told (``pin``), while
``drivers.snapshots.shared_snapshot`` holds that moment (PostgreSQL hands over its exported
snapshot; SQLite and MySQL hold writers off for those milliseconds).

A plain ``python -c`` child rather than multiprocessing or ``anyio.to_process``: those re-run the
parent's main module in the worker, which may be anyone's script. Both ways, messages are frames of
an 8-byte length and a pickle: ``open`` → ``ready``, ``pin`` → ``pinned``, then ``scan`` or
``encode`` → ``done``, or ``error`` at any step. ``encode`` requests may be sent ahead: answers come
in the order asked. Cancelled or failed, the parent kills the child.
"""

from __future__ import annotations

import contextlib
import pickle
import queue
import struct
import sys
import threading
from types import TracebackType
from typing import IO, Any, cast

import anyio
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream

try:
    import fcntl
except ImportError:  # not on Windows
    fcntl = None  # type: ignore[assignment]

from memoria_stream.children import child_env
from memoria_stream.malloc import one_arena
from memoria_stream.drivers import connect
from memoria_stream.drivers.urls import DatabaseURL
from memoria_stream.drivers.snapshots import join_snapshot
from memoria_stream.errors import InternalError
from memoria_stream.transfer.export_slices import EncodedSlice, SliceEncoder, SliceRequest
from memoria_stream.transfer.keyspool import Scan, scan
from memoria_stream.transfer.pipeline import fewer_collections

_FRAME = struct.Struct(">Q")
_WORKER = "from memoria_stream.transfer.worker import worker_main; worker_main()"


class Worker:
    """``async with Worker(url) as worker``: a child process connected to ``url``, waiting to pin."""

    def __init__(self, url: str | DatabaseURL) -> None:
        self.url = url
        self._process: Process | None = None
        self._answers: BufferedByteReceiveStream | None = None

    async def __aenter__(self) -> Worker:
        self._process = await anyio.open_process([sys.executable, "-c", _WORKER], env=child_env())
        assert self._process.stdout is not None
        self._answers = BufferedByteReceiveStream(self._process.stdout)
        try:
            await self._ask("open", self.url, expect="ready")
        except BaseException:
            await self._stop()
            raise
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: TracebackType | None) -> None:
        await self._stop()

    async def pin(self, adopt: str | None) -> None:
        """Start the worker's snapshot now (``adopt``: the statement that makes it a shared one)."""
        await self._ask("pin", adopt, expect="pinned")

    async def scan(self, request: Scan) -> Scan:
        """``keyspool.scan`` in the pinned snapshot; returns the filled request."""
        return cast(Scan, await self._ask("scan", request, expect="done"))

    async def submit(self, request: SliceRequest) -> None:
        """Ask for ``export.encode_slice`` in the pinned snapshot, without waiting for it: answers
        come back in the order asked, from :meth:`encoded`, so that the worker has its next slice
        as it ends one."""
        await self._send("encode", request)

    async def encoded(self) -> EncodedSlice:
        return cast(EncodedSlice, await self._receive("encode", expect="done"))

    async def _ask(self, kind: str, payload: Any, *, expect: str) -> Any:
        await self._send(kind, payload)
        return await self._receive(kind, expect=expect)

    async def _send(self, kind: str, payload: Any) -> None:
        assert self._process is not None and self._process.stdin is not None
        data = pickle.dumps((kind, payload), protocol=pickle.HIGHEST_PROTOCOL)
        try:
            await self._process.stdin.send(_FRAME.pack(len(data)) + data)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            raise InternalError(f"the worker process failed: {await self._last_words()}") from None

    async def _receive(self, kind: str, *, expect: str) -> Any:
        assert self._answers is not None
        try:
            (length,) = _FRAME.unpack(await self._answers.receive_exactly(_FRAME.size))
            answer, value = pickle.loads(await self._answers.receive_exactly(length))
        except (anyio.EndOfStream, anyio.IncompleteRead, anyio.BrokenResourceError, OSError):
            raise InternalError(f"the worker process failed: {await self._last_words()}") from None
        if answer == "error":
            raise value
        if answer != expect:
            raise InternalError(f"the worker process answered {answer!r} to {kind!r}")
        return value

    async def _last_words(self) -> str:
        assert self._process is not None and self._process.stderr is not None
        text = b""
        with anyio.move_on_after(5):
            async for chunk in self._process.stderr:
                text = (text + chunk)[-2000:]
        return text.decode(errors="replace").strip() or "no message"

    async def _stop(self) -> None:
        if self._process is None:
            return
        with anyio.CancelScope(shield=True):
            if self._process.returncode is None:
                self._process.kill()
            await self._process.aclose()
        self._process = None


async def scan_in_worker(url: str, request: Scan) -> Scan:
    """``scan`` of ``url`` in a worker process, in a snapshot of its own; returns the filled request."""
    async with Worker(url) as worker:
        await worker.pin(None)
        return await worker.scan(request)


# --- the child ----------------------------------------------------------------------------------

def worker_main() -> None:
    """The worker process: frames on stdin, answers on stdout (see the module docstring)."""
    one_arena()
    _roomier_pipe(sys.stdout.buffer)
    with _Answers(sys.stdout.buffer) as answers:
        try:
            with fewer_collections():
                anyio.run(_serve, sys.stdin.buffer, answers)
        except Exception as exc:  # handed to the parent, which raises it
            answers.put("error", exc)


async def _serve(requests: IO[bytes], answers: _Answers) -> None:
    # Blocking reads of stdin are fine here: the worker has nothing else to do meanwhile.
    _, url = _request(requests, "open")
    async with connect(url, blocking_reads=True) as conn:
        answers.put("ready", None)
        _, adopt = _request(requests, "pin")
        async with join_snapshot(conn, adopt):
            answers.put("pinned", None)
            slices = SliceEncoder(conn)
            while True:  # until the parent closes the pipe
                kind, request = _request(requests, "scan", "encode")
                if kind == "scan":
                    await scan(conn, request)
                    answers.put("done", request)
                else:
                    answers.put("done", await slices.encode(request))


def _request(requests: IO[bytes], *kinds: str) -> tuple[str, Any]:
    (length,) = _FRAME.unpack(_read_exactly(requests, _FRAME.size))
    found, payload = pickle.loads(_read_exactly(requests, length))
    if found not in kinds:
        raise InternalError(f"the worker expected {' or '.join(map(repr, kinds))}, got {found!r}")
    return found, payload


def _read_exactly(requests: IO[bytes], size: int) -> bytes:
    parts = []
    while size:
        part = requests.read(size)
        if not part:
            raise SystemExit(0)  # the parent went away: nothing left to do
        parts.append(part)
        size -= len(part)
    return b"".join(parts)


class _Answers:
    """Answers written by a thread of their own, in order: the worker goes on with the slice it
    was sent next while the parent, busy encoding a slice itself, has not yet read the last answer
    (a pipe holds 64 KB; an answer, megabytes). At most ``_AHEAD`` answers wait to be written."""

    _AHEAD = 2

    def __init__(self, out: IO[bytes]) -> None:
        self._out = out
        self._frames: queue.Queue[bytes | None] = queue.Queue(self._AHEAD)
        self._thread = threading.Thread(target=self._write_all, name="answers", daemon=True)
        self._gone = False  # the parent closed the pipe: nobody reads any more answers

    def __enter__(self) -> _Answers:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._frames.put(None)
        self._thread.join()

    def put(self, kind: str, value: Any) -> None:
        if self._gone:
            raise SystemExit(0)  # the parent went away: nothing left to do
        try:
            data = pickle.dumps((kind, value), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # an error that does not pickle: its text, then
            data = pickle.dumps(("error", InternalError(f"{type(value).__name__}: {value}")))
        self._frames.put(_FRAME.pack(len(data)) + data)

    def _write_all(self) -> None:
        while (frame := self._frames.get()) is not None:
            if not self._gone:
                try:
                    _write_frame(self._out, frame)
                except OSError:
                    self._gone = True  # drained from here on, so that ``put`` never blocks


# An answer (an encoded slice) is 1–2 MB. The parent takes in what the pipe holds at each turn of its
# event loop, and its own slices keep the loop busy between turns: through a pipe of the default
# 64 KB an answer took 17 to 35 turns, and the worker, its next request not yet sent, sat idle. From a
# 1 MB pipe a turn takes up to 256 KB (asyncio's read size for pipes).
_PIPE_BYTES = 1 << 20


def _roomier_pipe(out: IO[bytes]) -> None:
    set_size = getattr(fcntl, "F_SETPIPE_SZ", None) if fcntl else None  # Linux only
    if set_size is not None:
        with contextlib.suppress(OSError):  # not a pipe, or more than /proc/sys/fs/pipe-max-size
            fcntl.fcntl(out.fileno(), set_size, _PIPE_BYTES)


def _write_frame(out: IO[bytes], frame: bytes) -> None:
    # A signal (Ctrl-Z and fg, a profiler's pause) can cut a large write short, and a buffered
    # writer then reports what it took rather than keep the rest: write until all of it is out, or
    # the parent waits forever for the end of an answer.
    view = memoryview(frame)
    while view:
        view = view[out.write(view) or 0:]
    out.flush()
