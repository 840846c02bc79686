"""Measuring one child process (wall time, peak RSS), scratch databases, and the results table."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import anyio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from memoria_stream.model.catalog import EXPORT_ORDER  # noqa: E402
from memoria_stream.drivers import connect  # noqa: E402
from memoria_stream.transfer.schema import ensure_tables  # noqa: E402

PG_ADMIN = os.environ.get("MEMORIA_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
MYSQL_ADMIN = os.environ.get("MEMORIA_BENCH_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")
TIME = "/usr/bin/time"
TIMEOUT = float(os.environ.get("MEMORIA_BENCH_TIMEOUT", "1200"))  # seconds per path


@dataclass
class Measurement:
    """One child process: how long it ran, its peak RSS (itself and the children it waited for)."""

    seconds: float
    peak_rss_mb: float
    returncode: int
    stderr_tail: str = ""


def measure(argv: Sequence[str], *, env: dict[str, str] | None = None, log: Path | None = None) -> Measurement:
    """Run ``argv`` to completion. Peak RSS comes from ``/usr/bin/time -f %M`` when installed,
    else from ``os.wait4`` on the child (its own rusage, not the cumulative RUSAGE_CHILDREN max)."""
    rss_file = Path(tempfile.mkstemp(prefix="bench-rss-")[1])
    use_time = os.access(TIME, os.X_OK)
    full = [TIME, "-f", "%M", "-o", str(rss_file), *argv] if use_time else list(argv)
    err = open(log, "wb") if log else subprocess.PIPE  # noqa: SIM115 - closed below
    started = time.perf_counter()
    proc = subprocess.Popen(full, stdout=subprocess.DEVNULL, stderr=err, env=env)
    timer = threading.Timer(TIMEOUT, proc.kill)  # a peer that hangs must not stall the whole run
    timer.start()
    tail = b""
    if err is subprocess.PIPE:
        assert proc.stderr is not None
        tail = proc.stderr.read()[-2000:]  # read before wait4: a full pipe would block the child
    _, status, usage = os.wait4(proc.pid, 0)
    timer.cancel()
    seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if log:
        err.close()  # type: ignore[union-attr]
        tail = log.read_bytes()[-2000:]
    rss_kb = usage.ru_maxrss
    if use_time:
        text = rss_file.read_text().strip().splitlines()
        rss_kb = int(text[-1]) if text and text[-1].isdigit() else rss_kb
    rss_file.unlink(missing_ok=True)
    return Measurement(seconds, rss_kb / 1024, proc.returncode, tail.decode(errors="replace"))


def memoria_stream(*args: str) -> list[str]:
    return [sys.executable, "-m", "memoria_stream", *args]


def has_command(name: str) -> bool:
    return shutil.which(name) is not None


# --- scratch databases -------------------------------------------------------------------------

class Scratch:
    """Fresh ``bench_*`` databases on the local servers (and SQLite files), dropped on request."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir

    def create(self, backend: str, *, schema: bool) -> str:
        return anyio.run(self._create, backend, schema)

    async def _create(self, backend: str, schema: bool) -> str:
        if backend == "sqlite":
            path = self.workdir / f"bench_{uuid.uuid4().hex[:8]}.db"
            url = f"sqlite:///{path}"
        else:
            admin = PG_ADMIN if backend == "postgresql" else MYSQL_ADMIN
            name = f"bench_{uuid.uuid4().hex[:10]}"
            async with connect(admin) as conn:
                await conn.execute(f"CREATE DATABASE {name}")
            url = f"{admin.rsplit('/', 1)[0]}/{name}"
        if schema:
            async with connect(url) as conn:
                await ensure_tables(conn, EXPORT_ORDER)
        return url

    def drop(self, url: str) -> None:
        anyio.run(self._drop, url)

    async def _drop(self, url: str) -> None:
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).unlink(missing_ok=True)
            return
        admin = PG_ADMIN if url.startswith("postgresql") else MYSQL_ADMIN
        name = url.rsplit("/", 1)[1]
        force = " WITH (FORCE)" if admin.startswith("postgresql") else ""
        async with connect(admin) as conn:
            await conn.execute(f"DROP DATABASE IF EXISTS {name}{force}")

    def count_rows(self, url: str) -> int:
        return anyio.run(self._count, url)

    async def _count(self, url: str) -> int:
        total = 0
        async with connect(url) as conn:
            live = set(await conn.table_names())
            for name in EXPORT_ORDER:
                if name in live:
                    total += int((await conn.fetch(f"SELECT count(*) FROM {conn.capabilities.quote(name)}"))[0][0])
        return total


# --- results -----------------------------------------------------------------------------------

@dataclass
class Result:
    """One row of the table."""

    path: str
    kind: str  # memoria-stream | reference | ceiling | peer
    rows: int = 0
    mb: float = 0.0
    seconds: float = 0.0
    peak_rss_mb: float = 0.0
    ratio: float | None = None  # reference wall / this wall (how many times faster than the naive way)
    note: str = ""
    ok: bool = True
    parts: dict[str, float] = field(default_factory=dict)

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0

    @property
    def mb_per_second(self) -> float:
        return self.mb / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["rows_per_second"] = round(self.rows_per_second, 1)
        out["mb_per_second"] = round(self.mb_per_second, 2)
        return out


def render_table(results: Sequence[Result]) -> str:
    head = f"| {'path':<40} | {'rows':>9} | {'MB':>7} | {'wall s':>7} | {'rows/s':>9} | {'MB/s':>6} | " \
           f"{'peak RSS MB':>11} | {'× ref':>6} |"
    lines = [head, "|" + "|".join("-" * (len(c)) for c in head.split("|")[1:-1]) + "|"]
    for r in results:
        if r.note and not r.seconds:
            lines.append(f"| {r.path:<40} | {'skipped: ' + r.note:<78} |")
            continue
        ratio = f"{r.ratio:.1f}" if r.ratio else "—"
        flag = "" if r.ok else " (FAILED)"
        lines.append(f"| {r.path + flag:<40} | {r.rows:>9} | {r.mb:>7.1f} | {r.seconds:>7.2f} | "
                     f"{r.rows_per_second:>9.0f} | {r.mb_per_second:>6.1f} | {r.peak_rss_mb:>11.1f} | {ratio:>6} |")
    return "\n".join(lines)
