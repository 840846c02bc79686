"""Reading a whole database back as canonical values, and comparing datasets value for value."""

from __future__ import annotations

import math
from typing import Any

from memoria_stream.model.catalog import TABLES
from memoria_stream.drivers import connect
from memoria_stream.transfer.plans import export_plan

Dataset = dict[str, list[dict[str, Any]]]


async def read_all(url: str, tables: list[str] | None = None) -> Dataset:
    """Every row of every catalogue table present, decoded to canonical values, sorted by key."""
    out: Dataset = {}
    async with connect(url) as conn:
        live = set(await conn.table_names())
        for name in tables or list(TABLES):
            if name not in live:
                continue
            plan = export_plan(name, await conn.columns(name), conn.capabilities)
            rows: list[dict[str, Any]] = []
            async for batch in conn.read(name, plan.layout.columns, batch_rows=1000):
                rows += [dict(zip(plan.layout.columns, row)) for row in plan.decode(batch)]
            out[name] = sorted(rows, key=lambda r, k=TABLES[name].primary_key[0]: r[k])
    return out


def canonical(value: Any) -> Any:
    """A comparable form: floats by repr, containers recursively. Zero is compared without its sign:
    SQLite stores REAL -0.0 as 0.0 (documented in the README), and -0.0 == 0.0 in IEEE arithmetic."""
    if isinstance(value, float):
        if value == 0.0:
            return ("float", "0.0")
        return ("float", repr(value)) if math.isfinite(value) else ("float", str(value))
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int):
        return ("int", value)
    if isinstance(value, dict):
        return {k: canonical(v) for k, v in value.items()}
    if isinstance(value, list):
        return [canonical(v) for v in value]
    return value


def assert_same(expected: Dataset, actual: Dataset, *, tables: list[str] | None = None) -> None:
    for name in tables or list(expected):
        exp_rows = sorted(expected[name], key=lambda r, k=TABLES[name].primary_key[0]: r[k])
        act_rows = actual.get(name, [])
        assert len(act_rows) == len(exp_rows), f"{name}: {len(act_rows)} rows, expected {len(exp_rows)}"
        for exp, act in zip(exp_rows, act_rows):
            for column, value in exp.items():
                assert canonical(act.get(column)) == canonical(value), (
                    f"{name} {exp[TABLES[name].primary_key[0]]!r}.{column}: "
                    f"got {str(act.get(column))[:80]!r}, expected {str(value)[:80]!r}")


async def count_inserts(conn: Any, table: str) -> None:
    """From now on, count the statements that insert into ``table`` (PostgreSQL): a COPY counts
    once, however many rows it brings. The trigger fires in replica mode too (a load's FK-free mode)."""
    await conn.execute("CREATE TABLE IF NOT EXISTS statements_counted (n SERIAL PRIMARY KEY, tab TEXT)")
    await conn.execute("CREATE OR REPLACE FUNCTION counted() RETURNS trigger LANGUAGE plpgsql AS "
                       "$$ BEGIN INSERT INTO statements_counted (tab) VALUES (TG_TABLE_NAME); RETURN NULL; END $$")
    await conn.execute(f'CREATE TRIGGER counted AFTER INSERT ON "{table}" FOR EACH STATEMENT EXECUTE FUNCTION counted()')
    await conn.execute(f'ALTER TABLE "{table}" ENABLE ALWAYS TRIGGER counted')


async def inserts_counted(conn: Any, table: str) -> int:
    return int((await conn.fetch("SELECT count(*) FROM statements_counted WHERE tab = $1", table))[0][0])
