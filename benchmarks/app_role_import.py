"""Memoria's JSON into a Memoria-made PostgreSQL as an application role: wall time and peak RSS.

``python benchmarks/app_role_import.py --rows 100000`` generates a Memoria-shaped database
(``generate.py``), writes it the way Memoria's exporter does (tables alphabetically, so children
before parents, and ``data`` before ``metadata``), creates a NOSUPERUSER role owning a fresh database
built from Memoria's own DDL (FKs not deferrable), and times ``memoria-stream import-data`` into it as
that role. Such a load cannot switch FK checks off, so tables wait in the spool for their parents.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import uuid
from pathlib import Path
from typing import BinaryIO

import anyio
import orjson

from generate import generate
from harness import PG_ADMIN, ROOT, measure, memoria_stream

from memoria_stream.drivers import connect  # noqa: E402
from memoria_stream.transfer.files import export_data  # noqa: E402

DDL = ROOT / "tests" / "fixtures" / "memoria-ddl" / "postgresql.sql"
PEAK_RSS_LIMIT_MB = 150


def memoria_ordered_json(ndjson: Path, out: Path, workdir: Path) -> None:
    """Rewrite our NDJSON export as Memoria's JSON: one pass splitting rows per table, then the
    tables alphabetically under ``data`` and the metadata last (never the whole file in memory)."""
    parts: dict[str, BinaryIO] = {}
    metadata: dict[str, object] = {}
    try:
        with ndjson.open("rb") as lines:
            for line in lines:
                obj = orjson.loads(line)
                if "table" not in obj:
                    metadata = obj["metadata"]
                    continue
                part = parts.get(obj["table"]) or parts.setdefault(
                    obj["table"], (workdir / f"part-{len(parts)}.rows").open("w+b"))
                part.write(orjson.dumps(obj["data"]) + b"\n")
        with out.open("wb") as sink:
            # Line breaks as in Memoria's indented output (one row per line here, to keep it small).
            sink.write(b'{\n  "data": {')
            for index, name in enumerate(sorted(parts)):
                sink.write(b"%s\n    %s: [" % (b"," if index else b"", orjson.dumps(name)))
                parts[name].seek(0)
                for number, row in enumerate(parts[name]):
                    sink.write(b"%s\n      %s" % (b"," if number else b"", row.rstrip(b"\n")))
                sink.write(b"\n    ]")
            sink.write(b'\n  },\n  "metadata": ' + orjson.dumps(metadata, option=orjson.OPT_INDENT_2) + b"\n}\n")
    finally:
        for part in parts.values():
            part.close()


async def app_role_database() -> tuple[str, str, str]:
    """A NOSUPERUSER role owning a new database that holds Memoria's own tables."""
    role, database = f"bench_role_{uuid.uuid4().hex[:8]}", f"bench_{uuid.uuid4().hex[:10]}"
    async with connect(PG_ADMIN) as admin:
        await admin.execute(f"CREATE ROLE {role} LOGIN NOSUPERUSER")
        await admin.execute(f"CREATE DATABASE {database} OWNER {role}")
    host = PG_ADMIN.split("@", 1)[1].rsplit("/", 1)[0]
    url = f"postgresql://{role}@{host}/{database}"
    async with connect(url) as conn:
        await conn.execute(DDL.read_text())
    return url, role, database


async def row_count(url: str, tables: list[str]) -> int:
    async with connect(url) as conn:
        return sum([(await conn.fetch(f'SELECT count(*) FROM "{name}"'))[0][0] for name in tables])


async def drop(role: str, database: str) -> None:
    async with connect(PG_ADMIN) as admin:
        await admin.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        await admin.execute(f"DROP ROLE IF EXISTS {role}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=1, help="imports in a row (the second goes over data)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-app-role-") as scratch:
        workdir = Path(scratch)
        source, ndjson, memoria_json = workdir / "source.db", workdir / "ours.ndjson", workdir / "memoria.json"
        counts = generate(source, args.rows)
        anyio.run(lambda: export_data(ndjson, database_url=f"sqlite:///{source}"))
        memoria_ordered_json(ndjson, memoria_json, workdir)
        ndjson.unlink()
        url, role, database = anyio.run(app_role_database)
        failed = False
        try:
            for run in range(1, args.runs + 1):
                result = measure(memoria_stream("import-data", str(memoria_json), "--database-url", url, "-q"))
                loaded = anyio.run(row_count, url, sorted(counts))
                ok = result.returncode == 0 and loaded == sum(counts.values())
                failed |= not ok or result.peak_rss_mb >= PEAK_RSS_LIMIT_MB
                print(f"run {run}: {loaded} rows ({memoria_json.stat().st_size / 1e6:.0f} MB JSON) in "
                      f"{result.seconds:.1f} s, peak RSS {result.peak_rss_mb:.0f} MB"
                      f"{'' if ok else ' FAILED: ' + result.stderr_tail}")
        finally:
            anyio.run(drop, role, database)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
