"""``import-data --dry-run`` versus ``export-data`` of the same data (issue 15's budget: ≤ 1.2×).

For each size: the generated database (benchmarks/generate.py) is exported to NDJSON (timed), then
that file is checked with ``--dry-run`` against an empty PostgreSQL database, an empty MariaDB
database and a new SQLite file (each timed), in three alternating rounds so that a busy machine
weighs on both sides alike. Every run is a child process: wall time, CPU time (user + sys, the
steadier figure on a shared machine) and its own peak RSS. The best round of each is reported, with
its ratios to the best export.

Run: .venv/bin/python benchmarks/preflight_benchmark.py [ROWS ...]   (default 100000; needs the servers)
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from generate import generate  # noqa: E402
from harness import Measurement, Scratch, measure, memoria_stream  # noqa: E402

ROUNDS = 3
TARGETS = ("postgresql", "mysql", "sqlite")


def _best(runs: list[Measurement]) -> Measurement:
    for m in runs:
        assert m.returncode == 0, m.stderr_tail
    return min(runs, key=lambda m: m.seconds)


def run(rows: int, workdir: Path) -> list[str]:
    source = workdir / f"source-{rows}.db"
    generate(source, rows)
    dump = workdir / f"dump-{rows}.ndjson"
    scratch = Scratch(workdir)
    targets = {backend: scratch.create(backend, schema=False) for backend in TARGETS}
    exports: list[Measurement] = []
    checks: dict[str, list[Measurement]] = {b: [] for b in TARGETS}
    try:
        for _ in range(ROUNDS):
            exports.append(measure(memoria_stream("export-data", str(dump), "--database-url", f"sqlite:///{source}",
                                                  "--quiet")))
            for backend, url in targets.items():
                checks[backend].append(measure(memoria_stream("import-data", str(dump), "--database-url", url,
                                                              "--dry-run", "--quiet")))
    finally:
        for url in targets.values():
            scratch.drop(url)
    export = _best(exports)
    size_mb = dump.stat().st_size / 1e6
    cpu = min(m.cpu_seconds for m in exports)
    lines = [f"{rows:>8} rows ({size_mb:.0f} MB NDJSON), load {os.getloadavg()[0]:.1f}: "
             f"export-data {export.seconds:6.2f} s, CPU {cpu:6.2f} s / {export.peak_rss_mb:4.0f} MB"]
    for backend, runs in checks.items():
        best, best_cpu = _best(runs), min(m.cpu_seconds for m in runs)
        lines.append(f"{'':>8}  dry run → {backend:<10} {best.seconds:6.2f} s, CPU {best_cpu:6.2f} s / "
                     f"{best.peak_rss_mb:4.0f} MB   dry run / export: wall {best.seconds / export.seconds:4.2f}, "
                     f"CPU {best_cpu / cpu:4.2f}")
    for line in lines:
        print(line, flush=True)
    return lines


def main(argv: list[str]) -> int:
    sizes = [int(a) for a in argv] or [100_000]
    with tempfile.TemporaryDirectory(prefix="memoria-preflight-bench-") as folder:
        for rows in sizes:
            run(rows, Path(folder))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
