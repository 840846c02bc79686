"""Live columns win: a database with extra or missing columns exports and imports what exists,
and the report names the difference."""

from __future__ import annotations

from pathlib import Path

from memoria_stream.model.catalog import TABLES
from memoria_stream.drivers import connect
from memoria_stream.transfer.files import export_data, import_data
from memoria_stream.transfer.schema import create_table_sql
from memoria_stream.model.catalog import Table

from support.dataset import build_dataset, load_dataset
from support.helpers import read_all


def _without(table: Table, column: str) -> Table:
    return Table(table.name, tuple(c for c in table.columns if c.name != column), table.foreign_keys,
                 table.indexes, table.unique_constraints, table.checks)


async def test_missing_and_extra_columns_are_reported(db_url: str, second_db_url: str, tmp_path: Path) -> None:
    data = {"teams": build_dataset(3)["teams"]}
    async with connect(db_url) as conn:
        q = conn.capabilities.quote
        # An older source: teams without `description`, plus a column Memoria never had.
        await conn.execute(create_table_sql(conn.capabilities, _without(TABLES["teams"], "description")))
        await conn.execute(f"ALTER TABLE {q('teams')} ADD COLUMN {q('legacy_flag')} INTEGER")
        rows = [{k: v for k, v in row.items() if k != "description"} for row in data["teams"]]
        caps = conn.capabilities
        cols = [c for c in TABLES["teams"].columns if c.name != "description"]
        await conn.write("teams", [c.name for c in cols],
                         [tuple(caps.encoders.get(c.type, lambda v: v)(r[c.name]) for c in cols) for r in rows])

    dump = tmp_path / "old.ndjson"
    exported = await export_data(dump, database_url=db_url, tables=["teams"])
    assert any("lacks column(s) description" in w for w in exported.warnings)
    assert any("legacy_flag" in w and "not exported" in w for w in exported.warnings)

    imported = await import_data(dump, database_url=second_db_url)
    assert imported.tables["teams"].rows == 3
    back = (await read_all(second_db_url, ["teams"]))["teams"]
    assert [r["description"] for r in back] == [None, None, None]  # filled: nullable, no default
    assert [r["slug"] for r in back] == [r["slug"] for r in data["teams"]]


async def test_file_column_absent_from_target_is_dropped_with_a_warning(db_url: str, tmp_path: Path) -> None:
    async with connect(db_url) as conn:
        await conn.execute(create_table_sql(conn.capabilities, _without(TABLES["agents"], "preferred_model")))
    source = tmp_path / "full.db"
    async with connect(f"sqlite:///{source}") as conn:
        await load_dataset(conn, {"agents": build_dataset(2)["agents"]})
    dump = tmp_path / "agents.json"
    await export_data(dump, database_url=f"sqlite:///{source}")
    report = await import_data(dump, database_url=db_url, tables=["agents"])
    assert report.tables["agents"].rows == 2
    assert any("agents.preferred_model" in w and "dropped" in w for w in report.warnings)
