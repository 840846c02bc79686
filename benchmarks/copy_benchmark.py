"""Copy throughput: SQLite -> PostgreSQL/MySQL at N rows, jobs 1 vs 4, and indexes before vs after the load.

Run: .venv/bin/python benchmarks/copy_benchmark.py [ROWS]   (needs the test servers; uses tests/ helpers)
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support.databases import make_database  # noqa: E402
from support.copy_support import access_events, seed  # noqa: E402
from support.dataset import build_dataset  # noqa: E402

from memoria_stream.model.catalog import EXPORT_ORDER, get_table  # noqa: E402
from memoria_stream.transfer.copy import copy_database  # noqa: E402
from memoria_stream.drivers import connect  # noqa: E402
from memoria_stream.transfer.schema import create_index_sql, ensure_tables  # noqa: E402
from memoria_stream.transfer.verify import verify  # noqa: E402


async def main(rows: int) -> None:
    tmp = Path(tempfile.mkdtemp())
    data = build_dataset()
    data["memory_access_events"] += access_events(rows)
    source = f"sqlite:///{tmp / 'source.db'}"
    await seed(source, data)
    total = sum(len(r) for r in data.values())
    for backend in ("postgres", "mysql"):
        for jobs in (1, 4):
            async for target in make_database(backend, tmp, f"{backend}{jobs}"):
                report = await copy_database(source, target, jobs=jobs)
                print(f"sqlite -> {backend:8} jobs={jobs}: {total} rows in {report.seconds:.2f} s "
                      f"= {total / report.seconds:,.0f} rows/s")
        async for target in make_database(backend, tmp, f"{backend}-early-index"):
            async with connect(target) as conn:
                await ensure_tables(conn, EXPORT_ORDER, indexes=True)
            report = await copy_database(source, target)
            print(f"sqlite -> {backend:8} into existing tables with indexes: {report.seconds:.2f} s")
        async for target in make_database(backend, tmp, f"{backend}-late-index"):
            async with connect(target) as conn:
                await ensure_tables(conn, EXPORT_ORDER, indexes=False)
            started = time.perf_counter()
            await copy_database(source, target)
            loaded = time.perf_counter() - started
            async with connect(target) as conn:
                for name in EXPORT_ORDER:
                    for statement in create_index_sql(conn.capabilities, get_table(name)):  # type: ignore[arg-type]
                        await conn.execute(statement)
            both = time.perf_counter() - started
            print(f"sqlite -> {backend:8} indexes after load: load {loaded:.2f} s + indexes {both - loaded:.2f} s "
                  f"= {both:.2f} s")
    started = time.perf_counter()
    report = await verify(source, source)
    print(f"verify sqlite vs sqlite: {total} rows each in {report.seconds:.2f} s")


if __name__ == "__main__":
    anyio.run(main, int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
