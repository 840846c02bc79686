"""Interrupted runs on every backend: SIGKILL, SIGINT and SIGTERM during a 100k-row import, the
PostgreSQL backend terminated mid-import, a killed export, and a disk that fills while exporting.

Each ends with the target as it was (count and checksum of every table), a distinct exit code and
one line; the rerun then completes and ``verify`` finds the database equal to the file.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from memoria_stream.drivers import connect
from memoria_stream.transfer.verify import verify

from support.databases import PG_ADMIN_URL
from support.dataset import build_dataset, load_dataset
from support.processes import assert_clean_failure, run

ROOT = Path(__file__).resolve().parents[2]
ROWS = 100_000
SEEDS = (1, 2, 3)
Counts = dict[str, tuple[int | None, int]]


@pytest.fixture(scope="module")
def big_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A 100k-row Memoria SQLite database and its NDJSON export (~125 MB), made once per run."""
    folder = tmp_path_factory.mktemp("big")
    db, dump = folder / "big.db", folder / "big.ndjson"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "generate.py"), "--rows", str(ROWS), "--out", str(db)],
                   check=True, capture_output=True, timeout=300)
    result = run("export-data", str(dump), "--database-url", f"sqlite:///{db}", "-q")
    assert result.returncode == 0, result.stderr.decode()
    return db, dump


@pytest.fixture
async def loaded(db_url: str) -> str:
    async with connect(db_url) as conn:
        await load_dataset(conn, build_dataset(4))
    return db_url


async def state(url: str) -> Counts:
    """Every table's row count and order-independent checksum."""
    report = await verify(url, url)
    return {t.name: (t.rows_a, t.checksum_a) for t in report.tables}


def start(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "memoria_stream", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def stop_midway(proc: subprocess.Popen[bytes], seed: int, sig: int, *, reading: Path | None = None,
                writing: tuple[Path, int] | None = None) -> None:
    """Send ``sig`` once the run is a seeded fraction (15–60 %) through its input file (its read
    offset) or its output (bytes in the partial file): tied to progress, not to the clock, so a fast
    machine cannot finish before the signal."""
    fraction = random.Random(seed).uniform(0.15, 0.6)
    deadline = time.monotonic() + 180
    while _progress(proc.pid, reading, writing) < fraction:
        assert proc.poll() is None, "the run finished before the signal: nothing was interrupted"
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.002)
    proc.send_signal(sig)
    proc.wait(timeout=60)


def _progress(pid: int, reading: Path | None, writing: tuple[Path, int] | None) -> float:
    if reading is not None:
        return _read_offset(pid, reading) / reading.stat().st_size
    assert writing is not None
    folder, expected = writing
    partial = [p.stat().st_size for p in folder.glob(".*.partial") if p.exists()]
    return max(partial, default=0) / expected


def _read_offset(pid: int, path: Path) -> int:
    """How far process ``pid`` has read ``path`` (Linux: /proc/PID/fdinfo)."""
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                if os.readlink(fd) == str(path):
                    info = Path(f"/proc/{pid}/fdinfo/{fd.name}").read_text()
                    return int(next(line.split()[1] for line in info.splitlines() if line.startswith("pos:")))
            except (OSError, StopIteration):
                continue
    except OSError:
        pass
    return 0


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
async def test_sigkill_leaves_target_as_it_was_and_rerun_completes(
        loaded: str, big_files: tuple[Path, Path], seed: int) -> None:
    _, dump = big_files
    before = await state(loaded)
    proc = start("import-data", str(dump), "--database-url", loaded, "-q")
    stop_midway(proc, seed, signal.SIGKILL, reading=dump)
    assert proc.returncode == -signal.SIGKILL
    assert await state(loaded) == before
    rerun = run("import-data", str(dump), "--database-url", loaded, "-q")
    assert rerun.returncode == 0, rerun.stderr.decode()
    report = await verify(str(dump), loaded)
    assert report.ok, report.render()
    assert sum(t.rows_b or 0 for t in report.tables) == ROWS


@pytest.mark.slow
@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
async def test_sigint_and_sigterm_roll_back_with_one_line(
        loaded: str, big_files: tuple[Path, Path], sig: int, code: int) -> None:
    _, dump = big_files
    before = await state(loaded)
    proc = start("import-data", str(dump), "--database-url", loaded, "-q")
    stop_midway(proc, int(sig), sig, reading=dump)
    result = subprocess.CompletedProcess(proc.args, proc.returncode, b"", proc.stderr.read() if proc.stderr else b"")
    assert result.returncode == code, result.stderr.decode()
    assert_clean_failure(result, f"interrupted by {signal.Signals(sig).name}", "rolled back")
    assert await state(loaded) == before


@pytest.mark.slow
async def test_postgres_backend_terminated_mid_import(big_files: tuple[Path, Path], tmp_path: Path) -> None:
    from support.databases import make_database

    _, dump = big_files
    databases = make_database("postgres", tmp_path)
    url = await anext(databases)
    try:
        async with connect(url) as conn:
            await load_dataset(conn, build_dataset(4))
        before = await state(url)
        proc = start("import-data", str(dump), "--database-url", url, "-q")
        while _progress(proc.pid, dump, None) < 0.3:  # well into the load, not at a clock time
            assert proc.poll() is None, "the run finished before the backend was terminated"
            time.sleep(0.002)
        async with connect(PG_ADMIN_URL) as admin:
            killed = await admin.fetch("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                       "WHERE datname = $1 AND pid <> pg_backend_pid()", url.rsplit("/", 1)[1])
        assert killed and all(row[0] for row in killed)
        proc.wait(timeout=30)  # no process left hanging
        result = subprocess.CompletedProcess(proc.args, proc.returncode, b"", proc.stderr.read() if proc.stderr else b"")
        assert result.returncode == 5, result.stderr.decode()
        line = assert_clean_failure(result, "PostgreSQL")
        assert "connection" in line and ("lost" in line or "closed" in line), line
        assert await state(url) == before
    finally:
        await databases.aclose()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_interrupted_export_leaves_no_file_under_the_final_name(
        big_files: tuple[Path, Path], tmp_path: Path, sig: int) -> None:
    db, dump = big_files
    out = tmp_path / "export.ndjson"
    proc = start("export-data", str(out), "--database-url", f"sqlite:///{db}", "-q")
    stop_midway(proc, 7, sig, writing=(tmp_path, dump.stat().st_size))
    assert not out.exists()
    if sig == signal.SIGINT:  # a clean stop also removes the temporary file
        assert proc.returncode == 130
        assert os.listdir(tmp_path) == []


def test_disk_full_while_exporting(big_files: tuple[Path, Path], tmp_path: Path) -> None:
    db, _ = big_files
    small = tmp_path / f"full-{uuid.uuid4().hex[:6]}"
    small.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(small)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("mounting a 1 MiB tmpfs needs root")
    try:
        result = run("export-data", str(small / "out.ndjson"), "--database-url", f"sqlite:///{db}")
        assert result.returncode == 8
        assert_clean_failure(result, "No space left on device", "no file was left")
        assert os.listdir(small) == []
    finally:
        subprocess.run(["umount", str(small)], check=True)
