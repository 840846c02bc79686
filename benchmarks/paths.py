"""The paths a benchmark run measures: memoria-stream, the naive reference, the ceiling and peers.

Every database target is a fresh ``bench_*`` database. memoria-stream gets an empty one (it
creates the schema itself, as on a real promotion); the naive reference, the ceiling and DuckDB
get the catalogue's indexed schema created beforehand, untimed (they cannot create it); pgloader
gets an empty one and creates its own schema.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from harness import Measurement, Result, Scratch, has_command, measure, memoria_stream

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from memoria_stream.model.catalog import EXPORT_ORDER, TABLES  # noqa: E402

HERE = Path(__file__).resolve().parent
NAIVE = [sys.executable, str(HERE / "naive_reference.py")]
# Its default 1 GB Lisp heap is exhausted by 500k Memoria rows; a bigger heap and smaller prefetch fix that.
PGLOADER_OPTIONS = ["--quiet", "--dynamic-space-size", "4096", "--with", "prefetch rows = 10000"]
BACKEND_LABEL = {"postgresql": "PostgreSQL", "mysql": "MariaDB", "sqlite": "SQLite"}


@dataclass
class Bench:
    """What every path needs: the source database, a scratch area and the expected row count."""

    source: Path
    rows: int
    workdir: Path
    scratch: Scratch
    keep: bool = False
    results: dict[str, Result] = field(default_factory=dict)

    @property
    def source_url(self) -> str:
        return f"sqlite:///{self.source}"

    @property
    def source_mb(self) -> float:
        return self.source.stat().st_size / 1e6

    def file(self, name: str) -> Path:
        return self.workdir / name

    def add(self, result: Result) -> Result:
        self.results[result.path] = result
        return result


def _result(path: str, kind: str, m: Measurement, rows: int, mb: float, expected: int) -> Result:
    ok = m.returncode == 0 and rows == expected
    note = "" if ok else (f"exit {m.returncode}: {m.stderr_tail.strip()[-300:]}" if m.returncode
                          else f"wrote {rows} rows, expected {expected}")
    return Result(path, kind, rows, mb, m.seconds, m.peak_rss_mb, note=note, ok=ok)


def _to_database(bench: Bench, path: str, kind: str, backend: str, argv_for: Callable[[str], list[str]],
                 *, schema: bool, mb: float) -> Result:
    url = bench.scratch.create(backend, schema=schema)
    try:
        m = measure(argv_for(url))
        rows = bench.scratch.count_rows(url) if m.returncode == 0 else 0
    finally:
        if not bench.keep:
            bench.scratch.drop(url)
    return bench.add(_result(path, kind, m, rows, mb, bench.rows))


def _export(bench: Bench, path: str, kind: str, argv: list[str], out: Path) -> Result:
    m = measure(argv)
    mb = out.stat().st_size / 1e6 if out.exists() else 0.0
    rows = bench.rows if m.returncode == 0 else 0
    return bench.add(_result(path, kind, m, rows, mb, bench.rows))


# --- memoria-stream ----------------------------------------------------------------------------

def stream_export(bench: Bench, fmt: str) -> Result:
    out = bench.file(f"stream.{fmt}")
    argv = memoria_stream("export-data", str(out), "--database-url", bench.source_url, "--format", fmt, "-q")
    return _export(bench, f"export-data SQLite → {fmt.upper()}", "memoria-stream", argv, out)


def stream_import(bench: Bench, backend: str) -> Result:
    src = bench.file("stream.ndjson")
    return _to_database(bench, f"import-data NDJSON → {BACKEND_LABEL[backend]}", "memoria-stream", backend,
                        lambda url: memoria_stream("import-data", str(src), "--database-url", url, "-q"),
                        schema=False, mb=src.stat().st_size / 1e6)


def copy_available() -> bool:
    probe = subprocess.run(memoria_stream("copy", "--help"), capture_output=True)
    return probe.returncode == 0


def stream_copy(bench: Bench, backend: str) -> Result:
    path = f"copy SQLite → {BACKEND_LABEL[backend]}"
    if not copy_available():
        return bench.add(Result(path, "memoria-stream", note="the copy command does not exist yet"))
    return _to_database(bench, path, "memoria-stream", backend,
                        lambda url: memoria_stream("copy", bench.source_url, url, "-q"),
                        schema=False, mb=bench.source_mb)


# --- the naive reference -----------------------------------------------------------------------

def naive_export(bench: Bench, fmt: str) -> Result:
    out = bench.file(f"naive.{fmt}")
    argv = [*NAIVE, "export", "--db", str(bench.source), "--out", str(out), "--format", fmt]
    return _export(bench, f"naive export SQLite → {fmt.upper()}", "reference", argv, out)


def naive_import(bench: Bench, backend: str) -> Result:
    src = bench.file("stream.ndjson")
    return _to_database(bench, f"naive import NDJSON → {BACKEND_LABEL[backend]}", "reference", backend,
                        lambda url: [*NAIVE, "import", "--src", str(src), "--database-url", url],
                        schema=True, mb=src.stat().st_size / 1e6)


# --- the ceiling: CSV dump + the servers' own bulk loaders --------------------------------------

def _select(name: str) -> str:
    return f"SELECT {', '.join(chr(34) + c + chr(34) for c in TABLES[name].column_names)} FROM \"{name}\""


def ceiling_dump(bench: Bench) -> Result:
    """``sqlite3 -csv`` of every table to one CSV file per table (NULL written as an unquoted NULL)."""
    if not has_command("sqlite3"):
        return bench.add(Result("ceiling dump sqlite3 -csv", "ceiling", note="sqlite3 CLI not installed"))
    dump = bench.workdir / "csv"
    dump.mkdir(exist_ok=True)
    script = "\n".join(f"sqlite3 -csv -cmd '.nullvalue NULL' '{bench.source}' '{_select(n)}' > '{dump / n}.csv'"
                       for n in EXPORT_ORDER)
    result = _export(bench, "ceiling dump sqlite3 -csv", "ceiling", ["bash", "-ec", script], dump / "agents.csv")
    result.mb = sum(f.stat().st_size for f in dump.iterdir()) / 1e6
    return result


def _pg_load_argv(bench: Bench, url: str) -> list[str]:
    dump = bench.workdir / "csv"
    lines = [f"\\copy \"{n}\" ({', '.join(TABLES[n].column_names)}) FROM '{dump / n}.csv' "
             f"WITH (FORMAT csv, NULL 'NULL')" for n in EXPORT_ORDER]
    script = bench.workdir / "load.psql"
    script.write_text("\n".join(["BEGIN;", *lines, "COMMIT;"]) + "\n")
    return ["psql", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-f", str(script)]


def _mysql_load_argv(bench: Bench, url: str) -> list[str]:
    dump = bench.workdir / "csv"
    name = url.rsplit("/", 1)[1]
    statements = [f"LOAD DATA LOCAL INFILE '{dump / n}.csv' INTO TABLE `{n}` CHARACTER SET utf8mb4 "
                  "FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' ESCAPED BY '' LINES TERMINATED BY '\\n' "
                  f"({', '.join('`' + c + '`' for c in TABLES[n].column_names)});" for n in EXPORT_ORDER]
    sql = "SET FOREIGN_KEY_CHECKS = 0; START TRANSACTION; " + " ".join(statements) + " COMMIT;"
    return ["mariadb", "--local-infile=1", "-h", "127.0.0.1", "-u", "root", name, "-e", sql]


def ceiling_load(bench: Bench, backend: str) -> Result:
    client = "psql" if backend == "postgresql" else "mariadb"
    label = "psql \\copy" if backend == "postgresql" else "LOAD DATA LOCAL INFILE"
    path = f"ceiling CSV → {BACKEND_LABEL[backend]} ({label})"
    dump = bench.results.get("ceiling dump sqlite3 -csv")
    if not has_command(client) or dump is None or not dump.ok:
        return bench.add(Result(path, "ceiling", note=f"{client} CLI or the CSV dump is missing"))
    argv_for = (lambda url: _pg_load_argv(bench, url)) if backend == "postgresql" else \
        (lambda url: _mysql_load_argv(bench, url))
    result = _to_database(bench, path, "ceiling", backend, argv_for, schema=True, mb=dump.mb)
    # The ceiling path is dump + load: both are counted.
    result.parts = {"dump": round(dump.seconds, 3), "load": round(result.seconds, 3)}
    result.seconds += dump.seconds
    result.peak_rss_mb = max(result.peak_rss_mb, dump.peak_rss_mb)
    return result


# --- peers ---------------------------------------------------------------------------------------

def pgloader(bench: Bench) -> Result:
    path = "pgloader SQLite → PostgreSQL"
    if not has_command("pgloader"):
        return bench.add(Result(path, "peer", note="pgloader not installed"))
    log = bench.workdir / "pgloader.log"
    return _to_database(bench, path, "peer", "postgresql",
                        lambda url: ["pgloader", *PGLOADER_OPTIONS, "--logfile", str(log), bench.source_url, url],
                        schema=False, mb=bench.source_mb)


def duckdb(bench: Bench) -> Result:
    path = "DuckDB SQLite → PostgreSQL"
    probe = subprocess.run([sys.executable, str(HERE / "duckdb_copy.py"), "--probe"], capture_output=True, text=True)
    if probe.returncode != 0:
        return bench.add(Result(path, "peer", note=(probe.stdout + probe.stderr).strip()[-200:] or "duckdb missing"))
    return _to_database(bench, path, "peer", "postgresql",
                        lambda url: [sys.executable, str(HERE / "duckdb_copy.py"), str(bench.source), url],
                        schema=True, mb=bench.source_mb)


def environment() -> dict[str, str]:
    return {"cpus": str(os.cpu_count()), "python": sys.version.split()[0]}
