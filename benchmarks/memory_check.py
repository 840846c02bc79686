"""The memory contract: every memoria-stream path's peak RSS stays flat as the data grows.

    python benchmarks/memory_check.py --sizes 20000,100000      # what CI runs (about a minute)
    python benchmarks/memory_check.py --sizes 50000,500000      # the issue's sizes

Runs every memoria-stream path (export to NDJSON and JSON, import into PostgreSQL, MariaDB and
SQLite, copy into PostgreSQL and MariaDB when the command exists) at each size, prints the table,
and exits 1 when any path's peak RSS at the largest size exceeds its peak at the smallest by more
than ``--max-growth`` (default 25 %). Speed is printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from run import run

MAX_GROWTH = 0.25


def check(sizes: list[int], max_growth: float) -> tuple[list[str], list[dict[str, object]]]:
    by_size = {n: run(n, groups={"stream"})[0] for n in sizes}
    small, large = by_size[sizes[0]], by_size[sizes[-1]]
    failures: list[str] = []
    rows: list[dict[str, object]] = []
    for name, first in small.items():
        last = large.get(name)
        if last is None or not first.seconds or not last.seconds:
            continue  # skipped at some size (e.g. no copy command yet)
        if not (first.ok and last.ok):
            failures.append(f"{name}: failed ({first.note or last.note})")
            continue
        growth = last.peak_rss_mb / first.peak_rss_mb - 1
        rows.append({"path": name, **{f"rss_mb_{n}": round(by_size[n][name].peak_rss_mb, 1) for n in sizes},
                     **{f"seconds_{n}": round(by_size[n][name].seconds, 2) for n in sizes},
                     "growth": round(growth, 3)})
        if growth > max_growth:
            failures.append(f"{name}: peak RSS grew {growth:.0%} ({first.peak_rss_mb:.0f} → {last.peak_rss_mb:.0f} MB)")
    return failures, rows


def render(rows: list[dict[str, object]], sizes: list[int]) -> str:
    head = "| path | " + " | ".join(f"RSS MB @{n}" for n in sizes) + " | " + \
           " | ".join(f"wall s @{n}" for n in sizes) + " | growth |"
    lines = [head, "|" + "---|" * (2 * len(sizes) + 2)]
    for r in rows:
        lines.append(f"| {r['path']} | " + " | ".join(str(r[f'rss_mb_{n}']) for n in sizes) + " | " +
                     " | ".join(str(r[f'seconds_{n}']) for n in sizes) + f" | {float(r['growth']):+.0%} |")  # type: ignore[arg-type]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="20000,100000", help="comma-separated row counts, smallest first")
    parser.add_argument("--max-growth", type=float, default=MAX_GROWTH)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(","))
    failures, rows = check(sizes, args.max_growth)
    print(render(rows, sizes))
    if args.json:
        args.json.write_text(json.dumps({"sizes": sizes, "paths": rows, "failures": failures}, indent=2))
    if not rows:
        failures.append("no memoria-stream path ran")
    for failure in failures:
        print(f"memory contract broken: {failure}", file=sys.stderr)
    print(f"memory-check: {len(rows) - len([f for f in failures if 'grew' in f])} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
