"""Exact or loud: into columns that keep less than a value holds (Memoria's MySQL DDL: DATETIME
without fractions, single-precision FLOAT, 64 KiB TEXT) a load is refused before it commits, names
the column, and changes nothing; ``--allow-lossy`` loads and reports per column; the
``widen_mysql_columns`` migration makes such tables exact."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, AsyncIterator

import anyio
import pytest

from memoria_stream.model.catalog import TABLES
from memoria_stream.cli.main import main as cli_main
from memoria_stream.drivers import connect

from support.databases import SAMPLES, make_database
from support.helpers import assert_same, read_all
from support.samples import expected_from_sample_db

DDL = SAMPLES / "memoria-ddl"
SAMPLE_JSON = SAMPLES / "memoria-sample.json"
SEED = ("INSERT INTO agents (agent_id, name, is_agent, created_at, updated_at) "
        "VALUES ('seed-agent', 'Seeded before the import', 1, '2020-01-02 03:04:05', '2020-01-02 03:04:05')")
FIX = "memoria-stream migrate run widen_mysql_columns"


async def cli(*argv: str) -> int:
    return await anyio.to_thread.run_sync(cli_main, list(argv))


async def apply_memoria_ddl(url: str, dialect_file: str) -> None:
    """Build the schema exactly as Memoria's own models create it."""
    text = (DDL / dialect_file).read_text()
    statements = [s.strip() for s in text.split(";")]
    async with connect(url) as conn:
        for statement in statements:
            body = "\n".join(line for line in statement.splitlines() if not line.startswith("--")).strip()
            if body:
                await conn.execute(body)


@pytest.fixture
async def memoria_mysql(tmp_path: Path) -> AsyncIterator[str]:
    """A MariaDB database made by Memoria's MySQL DDL, holding one seeded agent."""
    async for url in make_database("mysql", tmp_path):
        await apply_memoria_ddl(url, "mysql.sql")
        async with connect(url) as conn:
            await conn.execute(SEED)
        yield url


async def column_types(url: str) -> dict[str, list[tuple[str, str, bool]]]:
    async with connect(url) as conn:
        return {name: [(c.name, c.declared_type.lower(), c.nullable) for c in await conn.columns(name)]
                for name in TABLES}


def error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err  # one line, no traceback
    return lines[0]


async def test_plain_import_into_memoria_mysql_is_refused_and_changes_nothing(memoria_mysql: str, capsys: Any) -> None:
    before = await read_all(memoria_mysql)
    assert [a["agent_id"] for a in before["agents"]] == ["seed-agent"]

    assert await cli("import-data", str(SAMPLE_JSON), "--database-url", memoria_mysql, "--quiet") == 3

    line = error_line(capsys.readouterr().err)
    assert "table " in line and "column " in line and "would store" in line
    assert "(datetime)" in line or "(float)" in line
    assert FIX in line and "--allow-lossy" in line and "nothing was changed" in line
    assert await read_all(memoria_mysql) == before


async def test_allow_lossy_loads_and_reports_each_column(memoria_mysql: str, capsys: Any) -> None:
    assert await cli("import-data", str(SAMPLE_JSON), "--database-url", memoria_mysql, "--allow-lossy") == 0
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if line.startswith("warning: ") and "--allow-lossy" in line]
    assert any(w.startswith("warning: chat_history.timestamp (datetime): stored ") for w in warnings), err
    assert any("(float)" in w for w in warnings), err
    assert len(warnings) == len(set(warnings)) >= 2
    counts = {name: len(rows) for name, rows in (await read_all(memoria_mysql)).items()}
    assert counts["chat_history"] == 77 and counts["workspace_members"] == 240
    assert counts["agents"] == 16  # emptied and reloaded: the import carries agents


async def test_after_widening_the_import_is_exact(memoria_mysql: str, capsys: Any) -> None:
    for _ in range(2):  # idempotent: the second run finds everything wide
        assert await cli("migrate", "run", "widen_mysql_columns", "--database-url", memoria_mysql) == 0
    out = capsys.readouterr().out
    assert "widened" in out and "every column already keeps every value" in out
    types = await column_types(memoria_mysql)
    assert ("timestamp", "datetime(6)", False) in types["chat_history"]
    assert ("user_input", "longtext", False) in types["chat_history"]
    assert ("expires_at", "datetime(6)", True) in types["short_term_memory"]
    assert ("importance_score", "double", False) in types["short_term_memory"]
    assert not any(t in ("datetime", "float", "text") for cols in types.values() for _, t, _ in cols)
    assert [a["agent_id"] for a in (await read_all(memoria_mysql))["agents"]] == ["seed-agent"]  # rows kept

    assert await cli("import-data", str(SAMPLE_JSON), "--database-url", memoria_mysql, "--quiet") == 0
    assert_same(expected_from_sample_db(SAMPLES / "memoria-sample.db"), await read_all(memoria_mysql))
    assert await cli("verify", str(SAMPLE_JSON), memoria_mysql, "--quiet") == 0


@pytest.mark.parametrize("backend, ddl", [("sqlite", "sqlite.sql"), ("postgres", "postgresql.sql")])
async def test_widening_is_a_no_op_elsewhere(backend: str, ddl: str, tmp_path: Path, capsys: Any) -> None:
    async for url in make_database(backend, tmp_path):
        await apply_memoria_ddl(url, ddl)
        assert await cli("import-data", str(SAMPLE_JSON), "--database-url", url, "--quiet") == 0
        before_types, before_rows = await column_types(url), await read_all(url)
        assert await cli("migrate", "run", "widen_mysql_columns", "--database-url", url) == 0
        assert "every column already keeps every value" in capsys.readouterr().out
        assert await column_types(url) == before_types
        assert await read_all(url) == before_rows


async def test_copy_into_memoria_mysql_refused_then_exact_after_widening(memoria_mysql: str, capsys: Any) -> None:
    source = f"sqlite:///{SAMPLES / 'memoria-sample.db'}"
    before = await read_all(memoria_mysql)
    assert await cli("copy", source, memoria_mysql, "--quiet") == 3
    line = error_line(capsys.readouterr().err)
    assert "column " in line and FIX in line and "--allow-lossy" in line
    assert await read_all(memoria_mysql) == before

    assert await cli("migrate", "run", "widen_mysql_columns", "--database-url", memoria_mysql) == 0
    assert await cli("copy", source, memoria_mysql, "--quiet", "--verify") == 0
    assert_same(expected_from_sample_db(SAMPLES / "memoria-sample.db"), await read_all(memoria_mysql))


async def test_text_over_64_kib_is_refused_naming_the_column(memoria_mysql: str, tmp_path: Path, capsys: Any) -> None:
    # Widen first so that only the long text is at stake, then narrow that one column back to TEXT.
    assert await cli("migrate", "run", "widen_mysql_columns", "--database-url", memoria_mysql) == 0
    async with connect(memoria_mysql) as conn:
        await conn.execute("ALTER TABLE chat_history MODIFY ai_output TEXT NOT NULL")
    row = json.loads(SAMPLE_JSON.read_text())["data"]["chat_history"][0]
    row["ai_output"] = "é" * 40000  # 40,000 characters, 80,000 bytes
    dump = tmp_path / "long.ndjson"
    dump.write_text(json.dumps({"table": "chat_history", "data": row}) + "\n")
    before = await read_all(memoria_mysql)
    capsys.readouterr()

    assert await cli("import-data", str(dump), "--database-url", memoria_mysql, "--quiet") == 3
    line = error_line(capsys.readouterr().err)
    assert "table chat_history" in line and "column ai_output (text)" not in line
    assert "column ai_output" in line and "65535 bytes" in line and "1 value " in line
    assert await read_all(memoria_mysql) == before

    assert await cli("import-data", str(dump), "--database-url", memoria_mysql, "--allow-lossy") == 0
    assert "chat_history.ai_output (text): stored 1 value" in capsys.readouterr().err
    stored = (await read_all(memoria_mysql, ["chat_history"]))["chat_history"][0]["ai_output"]
    assert stored == "é" * 32767  # cut at the column's 65,535 bytes, never inside a character
