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
from typing import Any, Callable, Sequence

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
    """One child process: how long it ran, its peak RSS and its CPU time (user + sys), each
    counting the child itself and the children it waited for (the servers are not counted)."""

    seconds: float
    peak_rss_mb: float
    returncode: int
    stderr_tail: str = ""
    cpu_seconds: float = 0.0


def measure(argv: Sequence[str], *, env: dict[str, str] | None = None, log: Path | None = None) -> Measurement:
    """Run ``argv`` to completion. Peak RSS and CPU come from ``/usr/bin/time -f '%M %U %S'`` when
    installed, else from ``os.wait4`` on the child (its own rusage, not the cumulative
    RUSAGE_CHILDREN of this process, which would mix in every earlier path)."""
    rss_file = Path(tempfile.mkstemp(prefix="bench-rss-")[1])
    use_time = os.access(TIME, os.X_OK)
    full = [TIME, "-f", "%M %U %S", "-o", str(rss_file), *argv] if use_time else list(argv)
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
    # Without /usr/bin/time (or if it printed nothing usable), wait4's rusage of the child itself.
    rss_kb, cpu = float(usage.ru_maxrss), usage.ru_utime + usage.ru_stime
    if use_time:
        rss_kb, cpu = _time_output(rss_file.read_text(), default=(rss_kb, cpu))
    rss_file.unlink(missing_ok=True)
    return Measurement(seconds, rss_kb / 1024, proc.returncode, tail.decode(errors="replace"), cpu_seconds=cpu)


def _time_output(text: str, default: tuple[float, float]) -> tuple[float, float]:
    """(peak RSS KB, user + sys seconds) from the last line /usr/bin/time wrote (a failed command
    gets a "Command exited with non-zero status" line before it)."""
    lines = text.strip().splitlines()
    try:
        rss_kb, user, system = lines[-1].split()
        return float(rss_kb), float(user) + float(system)
    except (IndexError, ValueError):
        return default


def memoria_stream(*args: str) -> list[str]:
    return [sys.executable, "-m", "memoria_stream", *args]


def has_command(name: str) -> bool:
    return shutil.which(name) is not None


# --- scratch databases -------------------------------------------------------------------------

class Scratch:
    """Fresh ``bench_*`` databases on the local servers (and SQLite files), dropped on request."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir

    def create(self, backend: str, *, schema: bool, indexes: bool = True) -> str:
        """A new empty database; with ``schema`` the 14 tables (untimed), and with ``indexes=False``
        only their keys (primary, unique, foreign), the secondary indexes left for the path to build."""
        return anyio.run(self._create, backend, schema, indexes)

    async def _create(self, backend: str, schema: bool, indexes: bool) -> str:
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
                await ensure_tables(conn, EXPORT_ORDER, indexes=indexes)
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
    cpu_seconds: float = 0.0  # user + sys of the child (the client side only: servers not counted)
    ratio: float | None = None  # reference wall / this wall (how many times faster than the naive way)
    note: str = ""
    ok: bool = True
    parts: dict[str, float] = field(default_factory=dict)
    walls: list[float] = field(default_factory=list)  # every round's wall time, where there were several

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0

    @property
    def mb_per_second(self) -> float:
        return self.mb / self.seconds if self.seconds else 0.0

    @property
    def cpu_us_per_row(self) -> float:
        return self.cpu_seconds / self.rows * 1e6 if self.rows else 0.0

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["rows_per_second"] = round(self.rows_per_second, 1)
        out["mb_per_second"] = round(self.mb_per_second, 2)
        out["cpu_us_per_row"] = round(self.cpu_us_per_row, 2)
        return out


# (heading, width, cell): every row has every cell, so the table stays valid Markdown.
_COLUMNS: list[tuple[str, int, Callable[[Result], str]]] = [
    ("rows", 9, lambda r: f"{r.rows}"),
    ("MB", 7, lambda r: f"{r.mb:.1f}"),
    ("wall s", 7, lambda r: f"{r.seconds:.2f}"),
    ("rounds' range", 13, lambda r: f"{min(r.walls):.2f}–{max(r.walls):.2f}" if len(r.walls) > 1 else "—"),
    ("rows/s", 9, lambda r: f"{r.rows_per_second:.0f}"),
    ("MB/s", 6, lambda r: f"{r.mb_per_second:.1f}"),
    ("peak RSS MB", 11, lambda r: f"{r.peak_rss_mb:.1f}"),
    ("CPU s", 6, lambda r: f"{r.cpu_seconds:.2f}"),
    ("CPU µs/row", 10, lambda r: f"{r.cpu_us_per_row:.1f}"),
    ("× ref", 6, lambda r: f"{r.ratio:.1f}" if r.ratio else "—"),
]
_PATH_WIDTH = 54


def render_table(results: Sequence[Result]) -> str:
    head = [f"{'path':<{_PATH_WIDTH}}"] + [f"{name:>{width}}" for name, width, _ in _COLUMNS]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("-" * (len(h) + 2) for h in head) + "|"]
    for r in results:
        if r.note and not r.seconds:
            cells = [f"{r.path + ' (skipped: ' + r.note + ')':<{_PATH_WIDTH}}"] + \
                    [f"{'—':>{width}}" for _, width, _ in _COLUMNS]
        else:
            cells = [f"{r.path + ('' if r.ok else ' (FAILED)'):<{_PATH_WIDTH}}"] + \
                    [f"{cell(r):>{width}}" for _, width, cell in _COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
