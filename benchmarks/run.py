"""Run every path side by side on one generated database and print one table and issue 14's targets.

    python benchmarks/run.py --rows 100000 --json results-100k.json --markdown results-100k.md
    python benchmarks/run.py --rows 50000 --only stream     # memoria-stream paths only
    python benchmarks/run.py --rows 500000 --rounds 3       # each path's median of three rounds
    python benchmarks/run.py --rows 100000 --profile copy-postgresql   # where one path's time goes

Each path runs as its own child process, so its peak RSS and CPU time (user + sys) are its own;
the database servers' own CPU is not counted. The "× ref" column is "times faster than the naive
reference doing the same thing" (for a copy: naive export + naive import).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import replace
from importlib import metadata
from pathlib import Path
from typing import Callable

import paths as p
from harness import Result, Scratch, has_command, render_table

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache"  # git-ignored

GROUPS = ("stream", "naive", "ceiling", "peers")
Step = Callable[[p.Bench], Result]

# memoria-stream's paths by a short name (also what --profile takes). The NDJSON export comes
# first: every import, ours and the naive one, reads the file it writes.
STREAM_STEPS: dict[str, Step] = {
    "export-ndjson": lambda b: p.stream_export(b, "ndjson"),
    "export-json": lambda b: p.stream_export(b, "json"),
    "copy-postgresql": lambda b: p.stream_copy(b, "postgresql"),
    "copy-mysql": lambda b: p.stream_copy(b, "mysql"),
    "import-postgresql": lambda b: p.stream_import(b, "postgresql"),
    "import-mysql": lambda b: p.stream_import(b, "mysql"),
    "import-sqlite": lambda b: p.stream_import(b, "sqlite"),
}

OTHER_STEPS: dict[str, tuple[str, Step]] = {
    "naive-export-ndjson": ("naive", lambda b: p.naive_export(b, "ndjson")),
    "naive-export-json": ("naive", lambda b: p.naive_export(b, "json")),
    "naive-import-postgresql": ("naive", lambda b: p.naive_import(b, "postgresql")),
    "naive-import-mysql": ("naive", lambda b: p.naive_import(b, "mysql")),
    "naive-import-sqlite": ("naive", lambda b: p.naive_import(b, "sqlite")),
    "dump-rowid": ("ceiling", lambda b: p.ceiling_dump(b, p.DUMP_ROWID)),
    "dump-pk": ("ceiling", lambda b: p.ceiling_dump(b, p.DUMP_PK)),
    "psql-keys-only": ("ceiling", lambda b: p.pg_copy(b, keys_only=True)),
    "psql-indexed": ("ceiling", lambda b: p.pg_copy(b, keys_only=False)),
    "load-data-rowid": ("ceiling", lambda b: p.mysql_load(b, pk_order=False)),
    "load-data-pk": ("ceiling", lambda b: p.mysql_load(b, pk_order=True)),
    "pgloader": ("peers", p.pgloader),
    "duckdb-postgresql": ("peers", lambda b: p.duckdb(b, "postgresql")),
    "duckdb-mysql": ("peers", lambda b: p.duckdb(b, "mysql")),
}

# The paths that a target compares run next to each other, so that the machine's drift (this VM's
# speed swings by up to 2x within minutes) reaches both alike; even rounds run each group backwards,
# so that neither side always goes first. Round 1's order also feeds each path what it reads: the
# NDJSON export before every import, each CSV dump before its loads (later rounds find them there).
CONTESTS: tuple[tuple[str, ...], ...] = (
    ("naive-export-ndjson", "export-ndjson", "dump-rowid"),
    ("export-json", "naive-export-json"),
    ("naive-import-postgresql", "import-postgresql", "psql-keys-only", "copy-postgresql", "pgloader",
     "duckdb-postgresql"),
    ("psql-indexed",),
    ("dump-pk", "load-data-pk", "import-mysql", "copy-mysql", "duckdb-mysql"),
    ("load-data-rowid", "naive-import-mysql"),
    ("import-sqlite", "naive-import-sqlite"),
)


def _group(name: str) -> str:
    return "stream" if name in STREAM_STEPS else OTHER_STEPS[name][0]


def _step(name: str) -> Step:
    return STREAM_STEPS[name] if name in STREAM_STEPS else OTHER_STEPS[name][1]


def plan(groups: set[str], round_number: int = 1) -> list[str]:
    """The steps' names in run order (see CONTESTS); the NDJSON export also runs for the naive group,
    whose imports read it."""
    ndjson_needed = bool(groups & {"stream", "naive"})
    order = []
    for contest in CONTESTS:
        names = [n for n in contest if _group(n) in groups or (n == "export-ndjson" and ndjson_needed)]
        order += names[::-1] if round_number % 2 == 0 else names
    return order


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


# --- the "× ref" column --------------------------------------------------------------------------

NAIVE_EXPORT, NAIVE_IMPORT_PG = "naive export SQLite → NDJSON", "naive import NDJSON → PostgreSQL"
_REFERENCE = {
    "export-data SQLite → NDJSON": [NAIVE_EXPORT],
    "export-data SQLite → JSON": ["naive export SQLite → JSON"],
}
for _backend in ("PostgreSQL", "MariaDB", "SQLite"):
    _REFERENCE[f"import-data NDJSON → {_backend}"] = [f"naive import NDJSON → {_backend}"]
    _REFERENCE[f"copy SQLite → {_backend}"] = [NAIVE_EXPORT, f"naive import NDJSON → {_backend}"]
for _peer in ("pgloader SQLite → PostgreSQL", "DuckDB SQLite → PostgreSQL"):
    _REFERENCE[_peer] = _REFERENCE["copy SQLite → PostgreSQL"]
_REFERENCE["DuckDB SQLite → MariaDB"] = _REFERENCE["copy SQLite → MariaDB"]


def wall(results: dict[str, Result], *names: str) -> float | None:
    """The summed wall time of these paths, or None unless every one of them ran and succeeded."""
    found = [results.get(n) for n in names]
    if not all(r is not None and r.ok and r.seconds for r in found):
        return None
    return sum(r.seconds for r in found if r)


def add_ratios(results: dict[str, Result]) -> None:
    for name, refs in _REFERENCE.items():
        ours, reference = wall(results, name), wall(results, *refs)
        if ours and reference:
            results[name].ratio = reference / ours


# --- issue 14's targets --------------------------------------------------------------------------

COPY_PG, COPY_MY = "copy SQLite → PostgreSQL", "copy SQLite → MariaDB"
IMPORT_PG, IMPORT_MY = "import-data NDJSON → PostgreSQL", "import-data NDJSON → MariaDB"
EXPORT = "export-data SQLite → NDJSON"
DUCKDB_PG, DUCKDB_MY, PGLOADER = "DuckDB SQLite → PostgreSQL", "DuckDB SQLite → MariaDB", "pgloader SQLite → PostgreSQL"
RSS_LIMIT_MB = 150


def _best(results: dict[str, Result], *names: str) -> float | None:
    times = [t for t in (wall(results, n) for n in names) if t]
    return min(times) if times else None


def targets(results: dict[str, Result]) -> list[dict[str, object]]:
    """Each target as a ratio (numerator / denominator) that must be ≥ or ≤ the needed value.
    "N× faster than X" is X's time / ours; "within N× of X" is our time / X's. A copy is compared
    with dump + load (both start from the SQLite file), an import with the load alone (both start
    from a file on disk)."""
    def w(*names: str) -> float | None:
        return wall(results, *names)

    specs = [
        ("copy → PostgreSQL: best of DuckDB, pgloader / ours", _best(results, DUCKDB_PG, PGLOADER), w(COPY_PG), "≥", 1.25),
        ("copy → PostgreSQL: (CSV dump + keys-only \\copy + CREATE INDEX) / ours",
         w(p.DUMP_ROWID, p.PG_KEYS_THEN_INDEX), w(COPY_PG), "≥", 1.0),
        ("import-data → PostgreSQL: naive import / ours", w(NAIVE_IMPORT_PG), w(IMPORT_PG), "≥", 6.0),
        ("import-data → PostgreSQL: keys-only \\copy + CREATE INDEX / ours", w(p.PG_KEYS_THEN_INDEX), w(IMPORT_PG),
         "≥", 1.0),
        ("export-data → NDJSON: naive export / ours", w(NAIVE_EXPORT), w(EXPORT), "≥", 6.0),
        ("export-data → NDJSON: ours / sqlite3 -csv dump", w(EXPORT), w(p.DUMP_ROWID), "≤", 2.0),
        ("copy → MariaDB: DuckDB / ours", w(DUCKDB_MY), w(COPY_MY), "≥", 1.5),
        ("import-data → MariaDB: DuckDB / ours", w(DUCKDB_MY), w(IMPORT_MY), "≥", 1.5),
        ("copy → MariaDB: ours / (PK-order CSV dump + LOAD DATA)", w(COPY_MY), w(p.DUMP_PK, p.MY_PK), "≤", 1.25),
        ("import-data → MariaDB: ours / LOAD DATA of PK-order CSV", w(IMPORT_MY), w(p.MY_PK), "≤", 1.25),
    ]
    out = [_target(name, top / bottom if top and bottom else None, op, need) for name, top, bottom, op, need in specs]
    stream = [r for r in results.values() if r.kind == "memoria-stream" and r.seconds]
    if stream:
        worst = max(stream, key=lambda r: r.peak_rss_mb)
        out.append(_target(f"peak RSS MB of every memoria-stream path (worst: {worst.path})", worst.peak_rss_mb,
                           "<", RSS_LIMIT_MB))
    return out


# What the server, or the SQLite CLI, reaches alone on a target's path against the same reference,
# with no client work at all (psql and sqlite3 only pass bytes on). A client can pass the bound only
# where its own form is cheaper for the server than CSV (PostgreSQL's binary COPY is, a little):
# a target far beyond its bound is out of reach for a load in one stream and one transaction.
def bounds(results: dict[str, Result]) -> list[dict[str, object]]:
    specs = [
        ("import-data → PostgreSQL: naive import / keys-only \\copy + CREATE INDEX (the server alone, loading "
         "the rows as CSV in one transaction)",
         wall(results, NAIVE_IMPORT_PG), wall(results, p.PG_KEYS_THEN_INDEX), 6.0),
        ("export-data → NDJSON: naive export / sqlite3 -csv dump (reading SQLite and writing text, no JSON)",
         wall(results, NAIVE_EXPORT), wall(results, p.DUMP_ROWID), 6.0),
    ]
    return [_target(name, top / bottom if top and bottom else None, "≥", need) for name, top, bottom, need in specs]


def by_round(measure: Callable[[dict[str, Result]], list[dict[str, object]]], medians: dict[str, Result],
             per_round: list[dict[str, Result]]) -> list[dict[str, object]]:
    """``measure``'s ratios (``targets``, ``bounds``), each the median of that ratio in every round,
    the round's paths having run side by side (CONTESTS). Peak RSS stays the worst of any round."""
    overall = measure(medians)
    if len(per_round) < 2:
        return overall
    rounds = [measure(results) for results in per_round]
    for i, target in enumerate(overall):
        values = [v for r in rounds if isinstance(v := r[i]["measured"], (int, float))]
        target["per_round"] = values
        if values and not str(target["target"]).startswith("peak RSS"):
            op, need = str(target["needed"]).split()
            target.update(_target(str(target["target"]), statistics.median(values), op, float(need)),
                          per_round=values)
    return overall


def _target(name: str, value: float | None, op: str, need: float) -> dict[str, object]:
    met = None if value is None else {"≥": value >= need, "≤": value <= need, "<": value < need}[op]
    return {"target": name, "measured": None if value is None else round(value, 2), "needed": f"{op} {need:g}",
            "met": met}


def render_targets(rows: list[dict[str, object]], *, kind: str = "target", met: str = "met") -> str:
    by_round = any("per_round" in t for t in rows)
    lines = [f"| {kind} | measured | per round | needed | {met} |", "|---|---|---|---|---|"] if by_round else \
        [f"| {kind} | measured | needed | {met} |", "|---|---|---|---|"]
    for t in rows:
        shown = "n/a" if t["met"] is None else ("yes" if t["met"] else "**no**")
        measured = "—" if t["measured"] is None else f"{t['measured']}"
        rounds = [", ".join(f"{v}" for v in t.get("per_round", []))] if by_round else []  # type: ignore[attr-defined]
        lines.append(" | ".join(["", str(t["target"]), measured, *rounds, str(t["needed"]), shown, ""]).strip())
    return "\n".join(lines)


def render_bounds(rows: list[dict[str, object]]) -> str:
    return ("The same references against the server, or the SQLite CLI, alone: where a bound falls short "
            "of its target's need, no client reaches that target.\n\n"
            + render_targets(rows, kind="bound", met="the need reachable"))


# --- running and reporting -----------------------------------------------------------------------

def new_bench(rows: int, seed: int, keep: bool) -> p.Bench:
    source = source_database(rows, seed)
    workdir = Path(tempfile.mkdtemp(prefix=f"memoria-bench-{rows}-"))
    bench = p.Bench(source, 0, workdir, Scratch(workdir), keep=keep)
    bench.rows = bench.scratch.count_rows(bench.source_url)
    return bench


def run(rows: int, *, groups: set[str], seed: int = 42, keep: bool = False,
        rounds: int = 1) -> tuple[dict[str, Result], list[dict[str, Result]]]:
    """Every step of the plan, ``rounds`` times over: whole rounds, so that the machine's drift
    during the run reaches every path alike. Returns each path's median round, and every round's
    results (for the targets per round)."""
    bench = new_bench(rows, seed, keep)
    samples: dict[str, list[Result]] = {}
    try:
        for round_number in range(1, rounds + 1):
            if rounds > 1:
                print(f"round {round_number} of {rounds}", file=sys.stderr, flush=True)
            for name in plan(groups, round_number):
                result = _step(name)(bench)
                samples.setdefault(result.path, []).append(result)
                status = "skipped: " + result.note if not result.seconds else \
                    f"{result.seconds:.2f} s, {result.peak_rss_mb:.0f} MB, CPU {result.cpu_seconds:.2f} s" + \
                    ("" if result.ok else f", FAILED: {result.note}")
                print(f"  {result.path}: {status}", file=sys.stderr, flush=True)
    finally:
        if not keep:
            shutil.rmtree(bench.workdir, ignore_errors=True)
    bench.results = {path: median_round(results) for path, results in samples.items()}
    add_ratios(bench.results)
    per_round = [{path: results[i] for path, results in samples.items() if i < len(results)} for i in range(rounds)]
    return bench.results, per_round


def median_round(results: list[Result]) -> Result:
    """The round with the median wall time (the lower of two middles: a round that happened), with
    every round's wall time beside it and the highest peak RSS of any round (the memory contract
    is about the worst). A path that failed in any round reports that failure."""
    failed = [r for r in results if not r.ok or not r.seconds]
    if failed:
        return failed[0]
    chosen = replace(sorted(results, key=lambda r: r.seconds)[(len(results) - 1) // 2])
    chosen.walls = [r.seconds for r in results]
    chosen.peak_rss_mb = max(r.peak_rss_mb for r in results)
    return chosen


def peer_versions() -> dict[str, str]:
    versions = {}
    for package in ("duckdb", "duckdb-extension-sqlite-scanner", "duckdb-extension-postgres-scanner",
                    "duckdb-extension-mysql-scanner", "pyinstrument"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    if has_command("pgloader"):
        out = subprocess.run(["pgloader", "--version"], capture_output=True, text=True).stdout
        versions["pgloader"] = out.splitlines()[0] if out else "?"
    return versions


def render_markdown(report: dict[str, object], table: str, goals: str) -> str:
    """A section ready to paste into RESULTS.md."""
    env: dict[str, str] = report["machine"]  # type: ignore[assignment]
    peers: dict[str, str] = report["peers"]  # type: ignore[assignment]
    rounds: int = report.get("rounds", 1)  # type: ignore[assignment]
    return "\n".join([
        f"## Issue 14 run, {report['rows']:,} rows ({report['date']})", "",
        f"Machine: {env['machine']}, {env['cpus']} cores, {env['memory_gib']} GiB, Python {env['python']}, "
        f"PostgreSQL {env['postgresql']}, MariaDB {env['mariadb']}, all on the same machine. "
        f"Load average (1, 5, 15 min) before the run: {env['load_average']}; after: {report['load_average_after']}.",
        f"Code measured: memoria-stream {env.get('code', '?')}.",
        f"Peers: {', '.join(f'{k} {v}' for k, v in peers.items())}.", "",
        f"Command: `{report['command']}`", "",
        "Wall time per path; peak RSS and CPU (user + sys) of that path's child process (the servers' "
        "own CPU is not counted). The ceiling rows are split: the `sqlite3 -csv` dump, then each load of it."
        + (f" Every path ran in each of {rounds} whole rounds: its row is its median round (the "
           "range beside it spans all rounds), its peak RSS the highest of any round; the × ref ratios "
           "compare the medians. The paths a target compares ran side by side in each round (even rounds "
           "in reverse order): each target is the median of its ratio per round, which is given beside "
           "it." if rounds > 1 else ""), "",
        table, "", goals, "",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--markdown", type=Path, help="also write a RESULTS.md-ready section here")
    parser.add_argument("--only", action="append", choices=GROUPS, help="run only these groups (repeatable)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch files and databases")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run every path this many times, in whole rounds; each reports its median round")
    parser.add_argument("--profile", choices=sorted(STREAM_STEPS), metavar="PATH_NAME",
                        help=f"instead: profile one memoria-stream path ({', '.join(STREAM_STEPS)})")
    parser.add_argument("--profile-out", type=Path, help="with --profile: the text file (default profile-NAME.txt)")
    parser.add_argument("--check-memory", action="store_true",
                        help="instead: the memory contract at --sizes (see memory_check.py)")
    parser.add_argument("--sizes", default="20000,100000")
    args = parser.parse_args(argv)
    if args.check_memory:
        import memory_check

        return memory_check.main(["--sizes", args.sizes] + (["--json", str(args.json)] if args.json else []))
    if args.profile:
        import profile_path

        out = ["--out", str(args.profile_out)] if args.profile_out else []
        return profile_path.main([args.profile, "--rows", str(args.rows), "--seed", str(args.seed), *out])
    command = f"cd {Path.cwd()} && {shlex.join([sys.executable, *sys.argv])}"
    machine = p.environment()
    results, per_round = run(args.rows, groups=set(args.only or GROUPS), seed=args.seed, keep=args.keep,
                             rounds=args.rounds)
    goals, limits = by_round(targets, results, per_round), by_round(bounds, results, per_round)
    report: dict[str, object] = {
        "rows": args.rows, "rounds": args.rounds, "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": command, "machine": machine, "peers": peer_versions(),
        "load_average_after": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "results": [r.as_dict() for r in results.values()], "targets": goals, "bounds": limits}
    table = render_table(list(results.values()))
    goals_text = render_targets(goals) + "\n\n" + render_bounds(limits)
    print(f"\n{args.rows} rows, {report['date']}, {machine['machine']} ({machine['cpus']} cores), "
          f"load average before {machine['load_average']}, after {report['load_average_after']}; "
          f"memoria-stream {machine['code']}\n")
    print(table, goals_text, sep="\n\n")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    if args.markdown:
        args.markdown.write_text(render_markdown(report, table, goals_text))
    return 0 if all(r.ok for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
