"""Run every path side by side on one generated database and print one table.

    python benchmarks/run.py --rows 500000 --json results-500k.json
    python benchmarks/run.py --rows 50000 --only stream     # memoria-stream paths only

Each path runs as its own child process, so its peak RSS is its own. The ratio column is
"times faster than the naive reference doing the same thing" (for copy: naive export + import).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Callable

import paths as p
from harness import Result, Scratch, render_table

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache"

GROUPS = ("stream", "naive", "ceiling", "peers")


def source_database(rows: int, seed: int) -> Path:
    """A cached generated database for this size (regenerated when the generator changes)."""
    sys.path.insert(0, str(HERE))
    import generate

    CACHE.mkdir(exist_ok=True)
    path = CACHE / f"memoria-{rows}-s{seed}-v{generate.GENERATOR_VERSION}.db"
    if not path.exists():
        partial = path.with_suffix(".partial")
        counts = generate.generate(partial, rows, seed=seed)
        partial.rename(path)
        print(f"generated {path.name}: {sum(counts.values())} rows, {path.stat().st_size / 1e6:.1f} MB", file=sys.stderr)
    return path


def plan(groups: set[str]) -> list[tuple[str, Callable[[p.Bench], Result]]]:
    """The paths in run order: the NDJSON export first, since every import reads its file."""
    steps: list[tuple[str, Callable[[p.Bench], Result]]] = [
        ("stream", lambda b: p.stream_export(b, "ndjson")),
        ("stream", lambda b: p.stream_export(b, "json")),
        ("stream", lambda b: p.stream_copy(b, "postgresql")),
        ("stream", lambda b: p.stream_copy(b, "mysql")),
        ("stream", lambda b: p.stream_import(b, "postgresql")),
        ("stream", lambda b: p.stream_import(b, "mysql")),
        ("stream", lambda b: p.stream_import(b, "sqlite")),
        ("naive", lambda b: p.naive_export(b, "ndjson")),
        ("naive", lambda b: p.naive_export(b, "json")),
        ("naive", lambda b: p.naive_import(b, "postgresql")),
        ("naive", lambda b: p.naive_import(b, "mysql")),
        ("naive", lambda b: p.naive_import(b, "sqlite")),
        ("ceiling", p.ceiling_dump),
        ("ceiling", lambda b: p.ceiling_load(b, "postgresql")),
        ("ceiling", lambda b: p.ceiling_load(b, "mysql")),
        ("peers", p.pgloader),
        ("peers", p.duckdb),
    ]
    # Every import reads the NDJSON file the first step (memoria-stream's export) writes.
    return [(g, step) for i, (g, step) in enumerate(steps) if g in groups or (i == 0 and "naive" in groups)]


_REFERENCE = {
    "export-data SQLite → NDJSON": ["naive export SQLite → NDJSON"],
    "export-data SQLite → JSON": ["naive export SQLite → JSON"],
}
for _backend in ("PostgreSQL", "MariaDB", "SQLite"):
    _REFERENCE[f"import-data NDJSON → {_backend}"] = [f"naive import NDJSON → {_backend}"]
    _REFERENCE[f"copy SQLite → {_backend}"] = ["naive export SQLite → NDJSON", f"naive import NDJSON → {_backend}"]
for _path in ("ceiling CSV → PostgreSQL (psql \\copy)", "pgloader SQLite → PostgreSQL", "DuckDB SQLite → PostgreSQL"):
    _REFERENCE[_path] = _REFERENCE["copy SQLite → PostgreSQL"]
_REFERENCE["ceiling CSV → MariaDB (LOAD DATA LOCAL INFILE)"] = _REFERENCE["copy SQLite → MariaDB"]


def add_ratios(results: dict[str, Result]) -> None:
    for name, refs in _REFERENCE.items():
        result = results.get(name)
        parts = [results.get(r) for r in refs]
        if result and result.seconds and all(x and x.seconds and x.ok for x in parts):
            result.ratio = sum(x.seconds for x in parts if x) / result.seconds


def _faster(results: dict[str, Result], a: str, b: str) -> float | None:
    """How many times faster path ``a`` is than path ``b`` (b's wall / a's wall)."""
    ra, rb = results.get(a), results.get(b)
    if ra and rb and ra.seconds and rb.seconds and ra.ok and rb.ok:
        return rb.seconds / ra.seconds
    return None


def targets(results: dict[str, Result]) -> list[dict[str, object]]:
    """The issue's targets, each with the measured value and whether it is met."""
    ceiling_pg, ceiling_my = "ceiling CSV → PostgreSQL (psql \\copy)", "ceiling CSV → MariaDB (LOAD DATA LOCAL INFILE)"
    rows = [
        ("copy → PostgreSQL faster than DuckDB", _faster(results, "copy SQLite → PostgreSQL", "DuckDB SQLite → PostgreSQL"), 1.0),
        ("copy → PostgreSQL ≥ 2× pgloader", _faster(results, "copy SQLite → PostgreSQL", "pgloader SQLite → PostgreSQL"), 2.0),
        ("copy → PostgreSQL no slower than the ceiling", _faster(results, "copy SQLite → PostgreSQL", ceiling_pg), 1.0),
        ("export → NDJSON ≥ 8× naive", _faster(results, "export-data SQLite → NDJSON", "naive export SQLite → NDJSON"), 8.0),
        ("import → PostgreSQL ≥ 5× naive", _faster(results, "import-data NDJSON → PostgreSQL", "naive import NDJSON → PostgreSQL"), 5.0),
        ("import → PostgreSQL ≥ 0.8× the ceiling", _faster(results, "import-data NDJSON → PostgreSQL", ceiling_pg), 0.8),
        ("import → MariaDB ≥ 4× naive", _faster(results, "import-data NDJSON → MariaDB", "naive import NDJSON → MariaDB"), 4.0),
        ("import → MariaDB ≥ 0.7× LOAD DATA LOCAL", _faster(results, "import-data NDJSON → MariaDB", ceiling_my), 0.7),
    ]
    out = [{"target": name, "measured": None if value is None else round(value, 2), "needed": need,
            "met": None if value is None else value >= need} for name, value, need in rows]
    stream = [r for r in results.values() if r.kind == "memoria-stream" and r.seconds]
    if stream:
        worst = max(stream, key=lambda r: r.peak_rss_mb)
        out.append({"target": f"peak RSS < 150 MB (worst: {worst.path})", "measured": round(worst.peak_rss_mb, 1),
                    "needed": 150, "met": worst.peak_rss_mb < 150})
    return out


def render_targets(rows: list[dict[str, object]]) -> str:
    lines = ["| target | measured | needed | met |", "|---|---|---|---|"]
    for t in rows:
        met = "n/a" if t["met"] is None else ("yes" if t["met"] else "**no**")
        measured = "—" if t["measured"] is None else f"{t['measured']}"
        lines.append(f"| {t['target']} | {measured} | {t['needed']} | {met} |")
    return "\n".join(lines)


def run(rows: int, *, groups: set[str], seed: int = 42, keep: bool = False) -> dict[str, Result]:
    source = source_database(rows, seed)
    workdir = Path(tempfile.mkdtemp(prefix=f"memoria-bench-{rows}-"))
    bench = p.Bench(source, 0, workdir, Scratch(workdir), keep=keep)
    bench.rows = bench.scratch.count_rows(bench.source_url)
    try:
        for _, step in plan(groups):
            result = step(bench)
            status = "skipped: " + result.note if not result.seconds else f"{result.seconds:.2f} s, {result.peak_rss_mb:.0f} MB"
            print(f"  {result.path}: {status}", file=sys.stderr, flush=True)
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
    add_ratios(bench.results)
    return bench.results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--only", action="append", choices=GROUPS, help="run only these groups (repeatable)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch files and databases")
    parser.add_argument("--check-memory", action="store_true",
                        help="instead: the memory contract at --sizes (see memory_check.py)")
    parser.add_argument("--sizes", default="20000,100000")
    args = parser.parse_args(argv)
    if args.check_memory:
        import memory_check

        return memory_check.main(["--sizes", args.sizes] + (["--json", str(args.json)] if args.json else []))
    results = run(args.rows, groups=set(args.only or GROUPS), seed=args.seed, keep=args.keep)
    table, goals = render_table(list(results.values())), targets(results)
    print(f"\n{args.rows} rows, {dt.date.today()}, {platform.machine()} ({p.environment()['cpus']} cores)\n")
    print(table)
    print()
    print(render_targets(goals))
    if args.json:
        args.json.write_text(json.dumps({
            "rows": args.rows, "date": dt.datetime.now().isoformat(timespec="seconds"), "machine": p.environment(),
            "results": [r.as_dict() for r in results.values()], "targets": goals}, indent=2))
    return 0 if all(r.ok for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
