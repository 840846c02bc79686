"""A real uvicorn server for the API tests, on a free loopback port, in a thread or a process."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import AsyncIterator, Iterator

import anyio
import httpx
import orjson
import uvicorn

from memoria_stream.api import Settings, create_app
from memoria_stream.transfer.files import import_data

KEY = "s3cret-test-key"


@contextlib.contextmanager
def running(settings: Settings) -> Iterator[str]:
    """Serve ``create_app(settings)`` with uvicorn in a thread; yield its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(settings), log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        _wait(lambda: server.started, thread)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


@contextlib.contextmanager
def serve_process(*args: str, env: dict[str, str] | None = None) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``python -m memoria_stream serve ...`` in its own process (to measure its memory alone)."""
    port = free_port()
    command = [sys.executable, "-m", "memoria_stream", "serve", "--port", str(port), "--log-level", "warning", *args]
    process = subprocess.Popen(command, env={**os.environ, **(env or {})}, stderr=subprocess.PIPE)
    try:
        base = f"http://127.0.0.1:{port}"
        _wait(lambda: _answers(base), process)
        yield base, process
    finally:
        process.terminate()
        process.wait(timeout=30)
        if process.stderr:
            process.stderr.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(base: str) -> bool:
    try:
        return httpx.get(f"{base}/health", timeout=1).status_code in (200, 503)
    except httpx.TransportError:
        return False


def _wait(ready, worker) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + 30
    while not ready():
        alive = worker.is_alive() if isinstance(worker, threading.Thread) else worker.poll() is None
        if not alive or time.monotonic() > deadline:
            raise RuntimeError("the API server did not start")
        time.sleep(0.05)


def peak_rss_kib(pid: int) -> int:
    """VmHWM: the process's peak resident memory so far."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM")


def chat_rows_ndjson(count: int, *, text_bytes: int = 400, start: int = 0) -> bytes:
    """NDJSON with ``count`` generated chat_history rows (ids ``chat-<n>``)."""
    filler = ("memoria streams rows 記憶 " * (text_bytes // 20 + 1))[:text_bytes]
    lines = [orjson.dumps({"metadata": {"format": "ndjson"}})]
    for i in range(start, start + count):
        lines.append(orjson.dumps({"table": "chat_history", "data": {
            "chat_id": f"chat-{i:08d}", "user_input": f"question {i} {filler}", "ai_output": f"answer {i}",
            "model": "gpt-4o", "timestamp": "2024-05-06T07:08:09.123456", "session_id": f"s-{i % 97}",
            "namespace": "default", "tokens_used": i, "metadata": {"i": i}}}))
    return b"\n".join(lines) + b"\n"


async def cli_import(path: Path, url: str) -> int:
    """``memoria-stream import-data PATH --database-url URL``, the real command in its own process."""
    command = [sys.executable, "-m", "memoria_stream", "import-data", str(path), "--database-url", url, "-q"]
    done = await anyio.run_process(command, check=False)
    assert not done.stderr, done.stderr.decode()
    return done.returncode


async def load(url: str, data: bytes | Path) -> None:
    await import_data(data, database_url=url)


async def chunks_of(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start:start + size]
