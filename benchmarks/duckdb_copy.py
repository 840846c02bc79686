"""The DuckDB peer: ATTACH the SQLite file and the target database, INSERT … SELECT per table.

    python benchmarks/duckdb_copy.py SOURCE.db postgresql://user@host:port/db
    python benchmarks/duckdb_copy.py SOURCE.db mysql://user@host:port/db
    python benchmarks/duckdb_copy.py --probe postgresql|mysql   # exit 0 when duckdb and the scanners load

The scanner extensions come from the ``duckdb-extension-{sqlite,postgres,mysql}-scanner`` wheels
when installed (no network needed), else DuckDB's own INSTALL from its extension repository. The
target must already hold the schema. Tables go parents first (EXPORT_ORDER), so the foreign keys
hold without switching their checks off.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from memoria_stream.model.catalog import EXPORT_ORDER, TABLES  # noqa: E402
from memoria_stream.drivers.urls import parse_url  # noqa: E402

# backend -> (DuckDB's extension, its ATTACH type)
TARGETS = {"postgresql": ("postgres_scanner", "postgres"), "mysql": ("mysql_scanner", "mysql")}


def _load_extension(con, name: str) -> None:  # type: ignore[no-untyped-def]
    import duckdb

    try:
        module = __import__(f"duckdb_extension_{name}")
    except ImportError:
        con.execute(f"INSTALL {name}; LOAD {name};")
        return
    path = Path(str(module.__file__)).parent / "extensions" / f"v{duckdb.__version__}" / f"{name}.duckdb_extension"
    con.execute(f"LOAD '{path}'")


def _attach_target(con, target: str) -> None:  # type: ignore[no-untyped-def]
    """ATTACH the target as ``dst``, its tables then reachable as ``dst."name"``."""
    url = parse_url(target)
    if url.backend == "postgresql":
        dsn = f"host={url.host} port={url.port or 5432} user={url.username or 'postgres'} dbname={url.database}"
    else:
        dsn = f"host={url.host} port={url.port or 3306} user={url.username or 'root'} database={url.database}"
    if url.password:
        dsn += f" password={url.password}"
    con.execute(f"ATTACH '{dsn}' AS dst (TYPE {TARGETS[url.backend][1]})")


def main(argv: list[str]) -> int:
    try:
        import duckdb
    except ImportError:
        print("duckdb not installed")
        return 1
    backend = argv[1] if argv[:1] == ["--probe"] else parse_url(argv[1]).backend
    con = duckdb.connect()
    try:
        for name in ("sqlite_scanner", TARGETS[backend][0]):
            _load_extension(con, name)
    except Exception as exc:  # noqa: BLE001 - any failure means "skip this peer"
        print(f"duckdb scanners unavailable: {str(exc).splitlines()[0]}")
        return 1
    if argv[:1] == ["--probe"]:
        return 0
    source, target = argv
    con.execute(f"ATTACH '{source}' AS src (TYPE sqlite, READ_ONLY)")
    _attach_target(con, target)
    con.execute(f"SET threads = {os.cpu_count() or 1}")
    for name in EXPORT_ORDER:
        cols = ", ".join(f'"{c}"' for c in TABLES[name].column_names)
        con.execute(f'INSERT INTO dst."{name}" ({cols}) SELECT {cols} FROM src."{name}"')
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
