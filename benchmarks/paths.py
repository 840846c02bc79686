"""The paths a benchmark run measures: memoria-stream, the naive reference, the ceiling and peers.

Every database target is a fresh ``bench_*`` database. memoria-stream gets an empty one (it
creates the schema itself, as on a real promotion); the naive reference, the ceiling and DuckDB
get the catalogue's schema created beforehand, untimed (they cannot create it): the indexed one,
or for the keys-only ``\\copy`` only the tables and their keys, the indexes then built in the timed
script; pgloader gets an empty one and creates its own schema.

The ceiling is two steps, each its own row: a ``sqlite3 -csv`` dump (in rowid order, and again in
primary-key order for InnoDB, whose table is its primary key), then the server's bulk loader
reading those CSV files. Targets that compare a copy add the two; an import starts from a file
already on disk, so it is compared with the load alone.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from harness import PG_ADMIN, Measurement, Result, Scratch, has_command, measure, memoria_stream

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from memoria_stream.drivers.postgres import CAPABILITIES as PG_CAPABILITIES  # noqa: E402
from memoria_stream.model.catalog import EXPORT_ORDER, TABLES  # noqa: E402
from memoria_stream.transfer.schema import create_index_sql  # noqa: E402

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

    profile: Path | None = None  # set by profile_path.py: memoria-stream runs under pyinstrument

    def add(self, result: Result) -> Result:
        self.results[result.path] = result
        return result

    def memoria_stream(self, *args: str) -> list[str]:
        if self.profile is None:
            return memoria_stream(*args)
        # pstats output: profile_path.py sorts it by own time ("tottime") with the stdlib.
        return [sys.executable, "-m", "pyinstrument", "-r", "pstats", "-o", str(self.profile),
                "-m", "memoria_stream", *args]


def _result(path: str, kind: str, m: Measurement, rows: int, mb: float, expected: int) -> Result:
    ok = m.returncode == 0 and rows == expected
    note = "" if ok else (f"exit {m.returncode}: {m.stderr_tail.strip()[-300:]}" if m.returncode
                          else f"wrote {rows} rows, expected {expected}")
    return Result(path, kind, rows, mb, m.seconds, m.peak_rss_mb, m.cpu_seconds, note=note, ok=ok)


def _to_database(bench: Bench, path: str, kind: str, backend: str, argv_for: Callable[[str], list[str]],
                 *, schema: bool, mb: float, indexes: bool = True) -> Result:
    url = bench.scratch.create(backend, schema=schema, indexes=indexes)
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
    argv = bench.memoria_stream("export-data", str(out), "--database-url", bench.source_url, "--format", fmt, "-q")
    return _export(bench, f"export-data SQLite → {fmt.upper()}", "memoria-stream", argv, out)


def stream_import(bench: Bench, backend: str) -> Result:
    src = bench.file("stream.ndjson")
    return _to_database(bench, f"import-data NDJSON → {BACKEND_LABEL[backend]}", "memoria-stream", backend,
                        lambda url: bench.memoria_stream("import-data", str(src), "--database-url", url, "-q"),
                        schema=False, mb=src.stat().st_size / 1e6)


def copy_available() -> bool:
    probe = subprocess.run(memoria_stream("copy", "--help"), capture_output=True)
    return probe.returncode == 0


def stream_copy(bench: Bench, backend: str) -> Result:
    path = f"copy SQLite → {BACKEND_LABEL[backend]}"
    if not copy_available():
        return bench.add(Result(path, "memoria-stream", note="the copy command does not exist yet"))
    return _to_database(bench, path, "memoria-stream", backend,
                        lambda url: bench.memoria_stream("copy", bench.source_url, url, "-q"),
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

DUMP_ROWID, DUMP_PK = "sqlite3 -csv dump (rowid order)", "sqlite3 -csv dump (PK order)"
PG_KEYS_THEN_INDEX = "psql \\copy CSV → PostgreSQL, keys only + CREATE INDEX"
PG_INDEXED = "psql \\copy CSV → PostgreSQL, indexed schema"
MY_ROWID = "LOAD DATA LOCAL CSV → MariaDB, rowid order, indexed"
MY_PK = "LOAD DATA LOCAL CSV → MariaDB, PK order, indexed"
_DUMP_DIR = {DUMP_ROWID: "csv-rowid", DUMP_PK: "csv-pk"}


def _select(name: str, *, pk_order: bool) -> str:
    table = TABLES[name]
    order = f" ORDER BY {', '.join(chr(34) + c + chr(34) for c in table.primary_key)}" if pk_order else ""
    return f"SELECT {', '.join(chr(34) + c + chr(34) for c in table.column_names)} FROM \"{name}\"{order}"


def ceiling_dump(bench: Bench, path: str = DUMP_ROWID) -> Result:
    """``sqlite3 -csv`` of every table to one CSV file per table (NULL written as an unquoted NULL).
    No JSON anywhere: the floor for reading the SQLite file and writing text."""
    if not has_command("sqlite3"):
        return bench.add(Result(path, "ceiling", note="sqlite3 CLI not installed"))
    dump = bench.workdir / _DUMP_DIR[path]
    dump.mkdir(exist_ok=True)
    pk_order = path == DUMP_PK
    script = "\n".join(f"sqlite3 -csv -cmd '.nullvalue NULL' '{bench.source}' "
                       f"'{_select(n, pk_order=pk_order)}' > '{dump / n}.csv'" for n in EXPORT_ORDER)
    result = _export(bench, path, "ceiling", ["bash", "-ec", script], dump / "agents.csv")
    result.mb = sum(f.stat().st_size for f in dump.iterdir()) / 1e6
    return result


def _pg_load_argv(bench: Bench, url: str, dump: Path, *, build_indexes: bool) -> list[str]:
    lines = [f"\\copy \"{n}\" ({', '.join(TABLES[n].column_names)}) FROM '{dump / n}.csv' "
             f"WITH (FORMAT csv, NULL 'NULL')" for n in EXPORT_ORDER]
    if build_indexes:  # the same statements memoria-stream runs after its own load
        lines += [f"{sql};" for n in EXPORT_ORDER for sql in create_index_sql(PG_CAPABILITIES, TABLES[n])]
    script = bench.workdir / f"load-{'keys' if build_indexes else 'indexed'}.psql"
    script.write_text("\n".join(["BEGIN;", *lines, "COMMIT;"]) + "\n")
    return ["psql", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-f", str(script)]


def _mysql_load_argv(url: str, dump: Path) -> list[str]:
    name = url.rsplit("/", 1)[1]
    statements = [f"LOAD DATA LOCAL INFILE '{dump / n}.csv' INTO TABLE `{n}` CHARACTER SET utf8mb4 "
                  "FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' ESCAPED BY '' LINES TERMINATED BY '\\n' "
                  f"({', '.join('`' + c + '`' for c in TABLES[n].column_names)});" for n in EXPORT_ORDER]
    sql = "SET FOREIGN_KEY_CHECKS = 0; START TRANSACTION; " + " ".join(statements) + " COMMIT;"
    # The client must allow LOCAL INFILE; memoria-stream itself keeps it off.
    return ["mariadb", "--local-infile=1", "-h", "127.0.0.1", "-u", "root", name, "-e", sql]


def _dump_for(bench: Bench, path: str, client: str, dump_path: str) -> Result | Path:
    """The CSV directory a load reads, or the skipped row when the client or the dump is missing."""
    dump = bench.results.get(dump_path)
    if not has_command(client) or dump is None or not dump.ok:
        return bench.add(Result(path, "ceiling", note=f"{client} CLI or the {dump_path} is missing"))
    return bench.workdir / _DUMP_DIR[dump_path]


def pg_copy(bench: Bench, *, keys_only: bool) -> Result:
    """``psql \\copy`` of the rowid-order CSV, in one transaction, into the keys-only schema then
    CREATE INDEX (the way memoria-stream loads), or straight into the indexed schema."""
    path = PG_KEYS_THEN_INDEX if keys_only else PG_INDEXED
    dump = _dump_for(bench, path, "psql", DUMP_ROWID)
    if isinstance(dump, Result):
        return dump
    mb = sum(f.stat().st_size for f in dump.iterdir()) / 1e6
    return _to_database(bench, path, "ceiling", "postgresql",
                        lambda url: _pg_load_argv(bench, url, dump, build_indexes=keys_only),
                        schema=True, indexes=not keys_only, mb=mb)


def mysql_load(bench: Bench, *, pk_order: bool) -> Result:
    """``LOAD DATA LOCAL INFILE`` into the indexed schema, from the CSV in rowid or in PK order."""
    path, dump_path = (MY_PK, DUMP_PK) if pk_order else (MY_ROWID, DUMP_ROWID)
    dump = _dump_for(bench, path, "mariadb", dump_path)
    if isinstance(dump, Result):
        return dump
    mb = sum(f.stat().st_size for f in dump.iterdir()) / 1e6
    return _to_database(bench, path, "ceiling", "mysql", lambda url: _mysql_load_argv(url, dump),
                        schema=True, mb=mb)


# --- peers ---------------------------------------------------------------------------------------

def pgloader(bench: Bench) -> Result:
    path = "pgloader SQLite → PostgreSQL"
    if not has_command("pgloader"):
        return bench.add(Result(path, "peer", note="pgloader not installed"))
    log = bench.workdir / "pgloader.log"
    return _to_database(bench, path, "peer", "postgresql",
                        lambda url: ["pgloader", *PGLOADER_OPTIONS, "--logfile", str(log), bench.source_url, url],
                        schema=False, mb=bench.source_mb)


def duckdb(bench: Bench, backend: str) -> Result:
    path = f"DuckDB SQLite → {BACKEND_LABEL[backend]}"
    script = [sys.executable, str(HERE / "duckdb_copy.py")]
    probe = subprocess.run([*script, "--probe", backend], capture_output=True, text=True)
    if probe.returncode != 0:
        return bench.add(Result(path, "peer", note=(probe.stdout + probe.stderr).strip()[-200:] or "duckdb missing"))
    return _to_database(bench, path, "peer", backend, lambda url: [*script, str(bench.source), url],
                        schema=True, mb=bench.source_mb)


def _output(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip()


def _server_version(argv: list[str]) -> str:
    return _output(argv) or "?"


def measured_code() -> str:
    """Which memoria-stream the paths run (they start as ``python -m memoria_stream`` from here, so
    the current folder comes before PYTHONPATH): its folder and commit, marked where it has
    uncommitted changes. An A/B run from the checkout's root would otherwise measure the checkout."""
    probe = [sys.executable, "-c", "import memoria_stream, pathlib; print(pathlib.Path(memoria_stream.__file__).parents[1])"]
    root = _output(probe)
    commit = _output(["git", "-C", root, "rev-parse", "--short", "HEAD"]) or "(not a git checkout)"
    changed = _output(["git", "-C", root, "status", "--porcelain", "--", "memoria_stream"])
    return f"{commit}{' with uncommitted changes' if changed else ''} ({root or '?'})"


def environment() -> dict[str, str]:
    """What the results depend on: cores, memory, versions, and how busy the machine was."""
    with open("/proc/meminfo") as meminfo:
        mem_kb = int(meminfo.readline().split()[1])
    return {
        "machine": platform.machine(), "cpus": str(os.cpu_count()), "memory_gib": f"{mem_kb / 2**20:.0f}",
        "python": sys.version.split()[0],
        "postgresql": _server_version(["psql", "-d", PG_ADMIN, "-Atc", "SHOW server_version"]),
        "mariadb": _server_version(["mariadb", "-h", "127.0.0.1", "-u", "root", "-Nse", "SELECT VERSION()"]),
        "load_average": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "code": measured_code(),
    }
