"""The naive reference: export and import the way Memoria does it (compat §2–3), for comparison.

Export reads every row of every table into memory, converts values as SQLAlchemy's result
processing does (DATETIME text -> datetime -> isoformat, JSON text -> json.loads, 0/1 -> bool),
then renders the whole document with one ``json.dumps`` (JSON: ``indent=2, sort_keys=True``;
NDJSON: one ``json.dumps`` per line, joined) and writes it in one go.

Import reads the whole file, parses it with ``json.loads``, empties the 14 tables, coerces values
per column and inserts each table with one ``executemany`` inside one transaction (stdlib sqlite3,
asyncpg for PostgreSQL, PyMySQL for MariaDB: no psycopg). It needs the schema to exist already,
as Memoria's import does. There is no ORM here, so this is faster than Memoria itself: every ratio
against it is conservative.

    python benchmarks/naive_reference.py export --db PATH --out FILE [--format ndjson|json]
    python benchmarks/naive_reference.py import --src FILE --database-url URL
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from memoria_stream.model.catalog import EXPORT_ORDER, TABLES, delete_order  # noqa: E402
from memoria_stream.model.types import ColumnType as T  # noqa: E402
from memoria_stream.drivers.urls import parse_url  # noqa: E402


# --- export -----------------------------------------------------------------------------------

def _read_datetime(value: Any) -> Any:
    return datetime.fromisoformat(value).isoformat() if isinstance(value, str) else value


def _read_json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, (str, bytes)) else value


_READERS: dict[T, Callable[[Any], Any]] = {T.TIMESTAMP: _read_datetime, T.JSON: _read_json, T.BOOLEAN: bool}


def export(db_path: str, out: str, fmt: str) -> None:
    db = sqlite3.connect(db_path)
    data: dict[str, list[dict[str, Any]]] = {}
    for name in EXPORT_ORDER:
        table = TABLES[name]
        names = table.column_names
        readers = [_READERS.get(c.type) for c in table.columns]
        rows = db.execute(f"SELECT {', '.join(chr(34) + n + chr(34) for n in names)} FROM {name}").fetchall()
        data[name] = [{k: (r(v) if r and v is not None else v) for k, r, v in zip(names, readers, row)}
                      for row in rows]
    db.close()
    metadata = {"exported_at": datetime.utcnow().isoformat() + "Z", "format": fmt, "dialect": "sqlite",
                "tables": [{"name": n, "row_count": len(rows)} for n, rows in data.items()]}
    if fmt == "json":
        content = json.dumps({"metadata": metadata, "data": data}, indent=2, sort_keys=True)
    else:
        lines = [json.dumps({"metadata": metadata})]
        lines += [json.dumps({"table": n, "data": row}) for n, rows in data.items() for row in rows]
        content = "\n".join(lines) + "\n"
    Path(out).write_text(content, encoding="utf-8")


# --- import -----------------------------------------------------------------------------------

def _load(src: str) -> dict[str, list[dict[str, Any]]]:
    text = Path(src).read_text(encoding="utf-8")
    if src.endswith(".json"):
        return json.loads(text)["data"]  # type: ignore[no-any-return]
    lines = text.splitlines()
    data: dict[str, list[dict[str, Any]]] = {}
    for line in lines[1:]:
        if line.strip():
            obj = json.loads(line)
            if "table" in obj:  # memoria-stream's files end with a {"trailer": …} line (digests): not data
                data.setdefault(obj["table"], []).append(obj["data"])
    return data


def _coercers(dialect: str) -> dict[T, Callable[[Any], Any]]:
    def ts(v: Any) -> Any:
        value = datetime.fromisoformat(v.replace("Z", "+00:00"))
        return value.strftime("%Y-%m-%d %H:%M:%S.%f") if dialect == "sqlite" else value

    return {T.TIMESTAMP: ts, T.JSON: json.dumps, T.BOOLEAN: (int if dialect == "sqlite" else bool)}


def _rows(name: str, objects: list[dict[str, Any]], dialect: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    table = TABLES[name]
    columns = [c.name for c in table.columns if c.name in objects[0]]
    coerce = _coercers(dialect)
    fns = [coerce.get(table.column(c).type) for c in columns]  # type: ignore[union-attr]
    rows = [tuple((f(o[c]) if f and o[c] is not None else o[c]) for c, f in zip(columns, fns)) for o in objects]
    return columns, rows


def import_sqlite(path: str, data: dict[str, list[dict[str, Any]]]) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA foreign_keys = OFF")
    db.execute("BEGIN")
    for name in delete_order(EXPORT_ORDER):
        db.execute(f"DELETE FROM {name}")
    for name in EXPORT_ORDER:
        if data.get(name):
            columns, rows = _rows(name, data[name], "sqlite")
            db.executemany(f"INSERT INTO {name} ({', '.join(chr(34) + c + chr(34) for c in columns)}) "
                           f"VALUES ({', '.join('?' * len(columns))})", rows)
    db.execute("COMMIT")
    db.close()


async def import_postgres(url: str, data: dict[str, list[dict[str, Any]]]) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    async with conn.transaction():
        for name in delete_order(EXPORT_ORDER):
            await conn.execute(f"DELETE FROM {name}")
        for name in EXPORT_ORDER:
            if data.get(name):
                columns, rows = _rows(name, data[name], "postgresql")
                marks = ", ".join(f"${i + 1}" for i in range(len(columns)))
                await conn.executemany(
                    f"INSERT INTO {name} ({', '.join(chr(34) + c + chr(34) for c in columns)}) VALUES ({marks})", rows)
    await conn.close()


def import_mysql(url: str, data: dict[str, list[dict[str, Any]]]) -> None:
    import pymysql

    parsed = parse_url(url)
    conn = pymysql.connect(host=parsed.host or "127.0.0.1", port=parsed.port or 3306, user=parsed.username or "root",
                           password=parsed.password or "", database=parsed.database, charset="utf8mb4")
    with conn.cursor() as cur:
        cur.execute("SET FOREIGN_KEY_CHECKS = 0")
        for name in delete_order(EXPORT_ORDER):
            cur.execute(f"DELETE FROM {name}")
        for name in EXPORT_ORDER:
            if data.get(name):
                columns, rows = _rows(name, data[name], "mysql")
                cur.executemany(f"INSERT INTO {name} ({', '.join('`' + c + '`' for c in columns)}) "
                                f"VALUES ({', '.join(['%s'] * len(columns))})", rows)
        cur.execute("SET FOREIGN_KEY_CHECKS = 1")
    conn.commit()
    conn.close()


def import_file(src: str, url: str) -> None:
    data = _load(src)
    parsed = parse_url(url)
    if parsed.backend == "sqlite":
        import_sqlite(str(parsed.database), data)
    elif parsed.backend == "postgresql":
        asyncio.run(import_postgres(url.replace("postgresql+asyncpg://", "postgresql://"), data))
    else:
        import_mysql(url, data)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Memoria's export/import, naively, for comparison.")
    sub = parser.add_subparsers(dest="command", required=True)
    exp = sub.add_parser("export")
    exp.add_argument("--db", required=True, help="SQLite file")
    exp.add_argument("--out", required=True)
    exp.add_argument("--format", choices=("ndjson", "json"), default="ndjson")
    imp = sub.add_parser("import")
    imp.add_argument("--src", required=True)
    imp.add_argument("--database-url", required=True)
    args = parser.parse_args(argv)
    if args.command == "export":
        export(args.db, args.out, args.format)
    else:
        import_file(args.src, args.database_url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
