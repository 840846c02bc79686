"""Backup/restore of 200k Memoria rows: the native tools (what memoria-stream uses) against a streaming
copy of every table through our own drivers (the alternative that was considered).

    .venv/bin/python benchmarks/backup_bench.py [sqlite postgres mysql] [--rows N]

Prints seconds, file size and peak RSS: of this process (``ru_maxrss``) and of each dump/restore tool
(measured with ``/usr/bin/time -f %M``, because a forked child's own ``ru_maxrss`` starts at the
parent's size).
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any, AsyncIterator

import anyio

from memoria_stream.drivers import native_backup as backup_native

from memoria_stream.model import catalog

from memoria_stream.transfer import schema
from memoria_stream.backup.actions import create_backup, restore_backup
from memoria_stream.drivers import Connection, connect
from memoria_stream.model.types import ColumnType

ADMIN = {"postgres": "postgresql://postgres@127.0.0.1:5432/test", "mysql": "mysql://root@127.0.0.1:3306/test"}
_RUNS: list[tuple[str, Path]] = []  # (tool, file /usr/bin/time writes its peak RSS to)


async def _database(backend: str, workdir: Path, label: str) -> AsyncIterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{workdir / (label + '.db')}"
        return
    name = f"bench_{uuid.uuid4().hex[:10]}"
    async with connect(ADMIN[backend]) as conn:
        await conn.execute(f"CREATE DATABASE {name}")
    try:
        yield ADMIN[backend].rsplit("/", 1)[0] + "/" + name
    finally:
        async with connect(ADMIN[backend]) as conn:
            await conn.execute(f"DROP DATABASE {name}" + (" WITH (FORCE)" if backend == "postgres" else ""))


def _enc(conn: Connection, ctype: ColumnType, value: Any) -> Any:
    encoder = conn.capabilities.encoders.get(ctype)
    return encoder(value) if encoder else value


async def _fill(url: str, rows: int) -> None:
    async with connect(url) as conn:
        await schema.ensure_tables(conn, catalog.EXPORT_ORDER)
        ts = _enc(conn, ColumnType.TIMESTAMP, datetime(2024, 5, 1, 12, 0, 0, 123456))
        meta = _enc(conn, ColumnType.JSON, {"n": 1, "tags": ["x"]})
        async with conn.transaction():
            for start in range(0, rows // 2, 10_000):
                ids = range(start, min(start + 10_000, rows // 2))
                await conn.write("chat_history", ("chat_id", "user_input", "ai_output", "model", "timestamp",
                                                  "session_id", "namespace", "tokens_used", "metadata"),
                                 [(f"chat-{i:07d}", f"question {i} " * 4, f"answer {i} é✓ " * 6, "gpt", ts,
                                   f"s{i % 97}", "default", i, meta) for i in ids])
                await conn.write("link_memory_threads", ("id", "source_memory_id", "target_memory_id", "relation",
                                                         "created_at"),
                                 [(i + 1, f"m-{i}", f"m-{i + 1}", "related", ts) for i in ids])


async def _stream_copy(source: str, target: str) -> None:
    async with connect(source) as src, connect(target) as dst:
        await schema.ensure_tables(dst, catalog.EXPORT_ORDER)
        async with src.snapshot(), dst.transaction(foreign_keys=False):
            for table in catalog.EXPORT_ORDER:
                columns = [c.name for c in await src.columns(table)]
                async for batch in src.read(table, columns, batch_rows=5000):
                    await dst.write(table, columns, batch)


def _timed_tools(workdir: Path) -> None:
    """Run every dump/restore tool under /usr/bin/time so its own peak RSS is known."""
    real = backup_native.anyio.open_process

    async def wrapped(argv: list[str], **kwargs: Any) -> Any:
        out = workdir / f"rss_{uuid.uuid4().hex[:6]}"
        _RUNS.append((Path(argv[0]).name, out))
        return await real(["/usr/bin/time", "-f", "%M", "-o", str(out), *argv], **kwargs)

    backup_native.anyio.open_process = wrapped  # type: ignore[attr-defined]


def _tool_rss() -> str:
    text = ", ".join(f"{name} {int(out.read_text().split()[-1]) / 1024:.0f} MiB" for name, out in _RUNS)
    _RUNS.clear()
    return text


async def bench(backend: str, rows: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        async for url in _database(backend, workdir, "source"):
            await _fill(url, rows)
            started = time.perf_counter()
            path = await create_backup(url, workdir / "backups")
            dump_s = time.perf_counter() - started
            started = time.perf_counter()
            assert path is not None
            await restore_backup(url, path)
            restore_s = time.perf_counter() - started
            tools = _tool_rss()
            async for copy_url in _database(backend, workdir, "copy"):
                started = time.perf_counter()
                await _stream_copy(url, copy_url)
                copy_s = time.perf_counter() - started
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(f"{backend:9} {rows} rows: native backup {dump_s:.2f} s + restore {restore_s:.2f} s, "
                  f"file {path.stat().st_size / 1e6:.1f} MB; streaming driver copy {copy_s:.2f} s; "
                  f"peak RSS this process {rss:.0f} MiB; tools: {tools or 'none (in-process)'}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("backends", nargs="*", default=["sqlite", "postgres", "mysql"])
    parser.add_argument("--rows", type=int, default=200_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        _timed_tools(Path(tmp))
        for backend in args.backends:
            anyio.run(bench, backend, args.rows)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
