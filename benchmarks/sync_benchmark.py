"""``copy --sync`` versus a full ``copy``: SQLite source (benchmarks/generate.py) -> PostgreSQL (or SQLite).

For each share of changed rows (0 %, 1 %, 10 %): a fresh PostgreSQL target gets a full ``copy`` of the
generated source (timed), then a copy of the source file is changed — half of the share updated (a
text column edited), a quarter deleted and a quarter inserted (in tables no other table references
and, for inserts, with no unique key besides the primary key) — and ``copy --sync`` brings the target
up to date (timed). Between the two, a first ``--sync`` with nothing changed (timed) takes the memory
the next one compares fingerprints against (``transfer/sync_memory.py``): without it a sync compares
every row in full. Each run is a child process: wall time and its peak RSS.

Each line ends with the load average when the sync finished: the machine may be shared.

Run: .venv/bin/python benchmarks/sync_benchmark.py [--source postgresql] [--target sqlite] [ROWS ...]
     (default: 100000 rows from SQLite to PostgreSQL; needs the PostgreSQL test server. A PostgreSQL
     source is filled by an untimed ``copy`` and changed in place, rows picked by a hash of the key)
"""

from __future__ import annotations

import re
import os
import shutil
import sqlite3
import sys
import tempfile
from pathlib import Path
from typing import Callable

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from generate import generate  # noqa: E402
from harness import Measurement, Scratch, measure, memoria_stream  # noqa: E402

from memoria_stream.drivers import connect  # noqa: E402
from memoria_stream.model.catalog import TABLES, Table  # noqa: E402
from memoria_stream.model.types import ColumnType  # noqa: E402

SHARES = (0.0, 0.01, 0.10)


def _referenced(name: str) -> bool:
    return any(name in t.parents for t in TABLES.values())


def _editable_text(table: Table) -> str | None:
    """A free text column (no length bound, no key, no FK) an edit can lengthen on any backend."""
    keyed = {c for fk in table.foreign_keys for c in fk.columns}
    keyed |= {c for u in table.unique_constraints for c in u.columns}
    keyed |= {c for ix in table.indexes if ix.unique for c in ix.columns}
    return next((c.name for c in table.columns if c.type is ColumnType.TEXT and c.length is None
                 and not c.primary_key and c.name not in keyed), None)


def change_statements(share: float, row_number: Callable[[Table], str]) -> list[str]:
    """SQL that changes about ``share`` of the rows of every table (see the module docstring);
    ``row_number(table)`` is an SQL integer spread over the rows (SQLite's rowid, a key hash)."""
    if not share:
        return []
    every = max(4, round(4 / share))  # n % every picks 4 rows in ``every``: 2 updated, 1 deleted, 1 copied
    statements = []
    for table in TABLES.values():
        text, n = _editable_text(table), row_number(table)
        if text:
            statements.append(f'UPDATE "{table.name}" SET "{text}" = coalesce("{text}", \'\') || \' (edited)\' '
                              f"WHERE {n} % {every} IN (1, 2)")
        if _referenced(table.name):
            continue
        statements.append(f'DELETE FROM "{table.name}" WHERE {n} % {every} = 3')
        if table.unique_constraints or any(ix.unique for ix in table.indexes):
            continue
        key = table.primary_key[0]
        new_key = f'"{key}" + 100000000' if table.column(key).type is ColumnType.INTEGER \
            else f'"{key}" || \'-new\''  # type: ignore[union-attr]
        columns = ", ".join(f'"{c}"' for c in table.column_names)
        values = ", ".join(new_key if c == key else f'"{c}"' for c in table.column_names)
        statements.append(f'INSERT INTO "{table.name}" ({columns}) SELECT {values} FROM "{table.name}" '
                          f"WHERE {n} % {every} = 0")
    return statements


def change(source: str, share: float) -> None:
    """Change about ``share`` of the rows of every table of the source database ``source`` in place."""
    if source.startswith("sqlite:///"):
        with sqlite3.connect(source.removeprefix("sqlite:///")) as db:
            for statement in change_statements(share, lambda table: "rowid"):
                db.execute(statement)
        return
    anyio.run(_change_on_server, source, change_statements(
        share, lambda table: f'abs(hashtext("{table.primary_key[0]}"::text))'))


async def _change_on_server(url: str, statements: list[str]) -> None:
    async with connect(url) as conn, conn.transaction():
        for statement in statements:
            await conn.execute(statement)


def _changed(m: Measurement) -> int | None:
    """The summary's row count (the JSON line may be longer than the captured tail: search it)."""
    found = re.findall(r'"changed":(\d+)', m.stderr_tail)
    return int(found[-1]) if found else None


def run(rows: int, workdir: Path, backend: str = "postgresql", source_backend: str = "sqlite") -> list[str]:
    base = workdir / f"source-{rows}.db"
    generate(base, rows)
    scratch = Scratch(workdir)
    lines = [_into_empty(scratch, base, rows, backend, source_backend, workdir)]
    print(lines[-1], flush=True)
    for share in SHARES:
        source = _source(scratch, base, source_backend, workdir / f"source-{rows}-{share}.db")
        target = scratch.create(backend, schema=False)
        try:
            full = measure(memoria_stream("copy", source, target, "--quiet"))
            assert full.returncode == 0, full.stderr_tail
            # The first sync after a plain copy has no memory yet: it compares every row in full.
            first = measure(memoria_stream("copy", source, target, "--sync", "--quiet"))
            assert first.returncode == 0, first.stderr_tail
            change(source, share)
            synced = measure(memoria_stream("copy", source, target, "--sync", "--log-format", "json"))
            assert synced.returncode == 0, synced.stderr_tail
            checked = measure(memoria_stream("verify", source, target, "--quiet"))  # not timed
            assert checked.returncode == 0, checked.stderr_tail
        finally:
            scratch.drop(target)
            scratch.drop(source)
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        lines.append(f"{rows:>8} rows {source_backend} -> {backend}  {share:>4.0%} changed ({_changed(synced)} rows): "
                     f"full copy {full.seconds:6.2f} s / {full.peak_rss_mb:5.0f} MB   first sync {first.seconds:6.2f} s"
                     f" / {first.peak_rss_mb:5.0f} MB   sync {synced.seconds:6.2f} s / {synced.peak_rss_mb:5.0f} MB   "
                     f"sync/full {synced.seconds / full.seconds:4.2f}   load {load}")
        print(lines[-1], flush=True)
    return lines


def _into_empty(scratch: Scratch, base: Path, rows: int, backend: str, source_backend: str, workdir: Path) -> str:
    """``copy --sync`` into an empty target (tables created, copied whole, remembered) against ``copy``."""
    source = _source(scratch, base, source_backend, workdir / f"source-{rows}-empty.db")
    targets = [scratch.create(backend, schema=False) for _ in range(2)]
    try:
        full = measure(memoria_stream("copy", source, targets[0], "--quiet"))
        synced = measure(memoria_stream("copy", source, targets[1], "--sync", "--quiet"))
        assert full.returncode == 0 and synced.returncode == 0, full.stderr_tail + synced.stderr_tail
    finally:
        for url in (*targets, source):
            scratch.drop(url)
    return (f"{rows:>8} rows {source_backend} -> {backend}  into an empty target: full copy {full.seconds:6.2f} s / "
            f"{full.peak_rss_mb:5.0f} MB   copy --sync {synced.seconds:6.2f} s / {synced.peak_rss_mb:5.0f} MB   "
            f"sync/full {synced.seconds / full.seconds:4.2f}")


def _source(scratch: Scratch, base: Path, backend: str, path: Path) -> str:
    """A fresh source holding the generated rows: a copy of the file, or a server database filled by
    ``copy`` (not timed)."""
    if backend == "sqlite":
        shutil.copy(base, path)
        return f"sqlite:///{path}"
    url = scratch.create(backend, schema=False)
    filled = measure(memoria_stream("copy", f"sqlite:///{base}", url, "--quiet"))
    assert filled.returncode == 0, filled.stderr_tail
    return url


def main(argv: list[str]) -> int:
    backend, source_backend = "postgresql", "sqlite"
    while argv[:1] in (["--target"], ["--source"]):
        if argv[0] == "--target":
            backend = argv[1]
        else:
            source_backend = argv[1]
        argv = argv[2:]
    sizes = [int(a) for a in argv] or [100_000]
    with tempfile.TemporaryDirectory(prefix="memoria-sync-bench-") as folder:
        os.environ["MEMORIA_STREAM_STATE_DIR"] = str(Path(folder) / "state")  # the syncs' memory: not in ~
        for rows in sizes:
            run(rows, Path(folder), backend, source_backend)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
