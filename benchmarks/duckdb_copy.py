"""The DuckDB peer: ATTACH the SQLite file and the PostgreSQL database, INSERT … SELECT per table.

    python benchmarks/duckdb_copy.py SOURCE.db postgresql://user@host:port/db
    python benchmarks/duckdb_copy.py --probe   # exit 0 when duckdb and both scanners load

The scanner extensions come from the ``duckdb-extension-sqlite-scanner`` and
``duckdb-extension-postgres-scanner`` wheels when installed (no network needed), else DuckDB's own
autoloading. The target must already hold the schema.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from memoria_stream.model.catalog import EXPORT_ORDER, TABLES  # noqa: E402
from memoria_stream.drivers.urls import parse_url  # noqa: E402


def _load_extensions(con) -> None:  # type: ignore[no-untyped-def]
    import duckdb

    for package, name in (("duckdb_extension_sqlite_scanner", "sqlite_scanner"),
                          ("duckdb_extension_postgres_scanner", "postgres_scanner")):
        try:
            module = __import__(package)
        except ImportError:
            con.execute(f"INSTALL {name}; LOAD {name};")
            continue
        path = Path(module.__file__).parent / "extensions" / f"v{duckdb.__version__}" / f"{name}.duckdb_extension"
        con.execute(f"LOAD '{path}'")


def main(argv: list[str]) -> int:
    try:
        import duckdb
    except ImportError:
        print("duckdb not installed")
        return 1
    con = duckdb.connect()
    try:
        _load_extensions(con)
    except Exception as exc:  # noqa: BLE001 - any failure means "skip this peer"
        print(f"duckdb scanners unavailable: {str(exc).splitlines()[0]}")
        return 1
    if argv[:1] == ["--probe"]:
        return 0
    source, target = argv
    url = parse_url(target)
    dsn = f"host={url.host} port={url.port or 5432} user={url.username or 'postgres'} dbname={url.database}"
    con.execute(f"ATTACH '{source}' AS src (TYPE sqlite, READ_ONLY)")
    con.execute(f"ATTACH '{dsn}' AS dst (TYPE postgres)")
    threads = os.cpu_count() or 1
    con.execute(f"SET threads = {threads}")
    for name in EXPORT_ORDER:
        cols = ", ".join(f'"{c}"' for c in TABLES[name].column_names)
        con.execute(f'INSERT INTO dst.public."{name}" ({cols}) SELECT {cols} FROM src."{name}"')
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
