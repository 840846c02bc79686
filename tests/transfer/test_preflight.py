"""``--dry-run``: every problem a load would meet, reported in one pass with where it is, and the
target left exactly as it was (no table created, no row changed)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, AsyncIterator

import anyio
import httpx
import orjson
import pytest

from memoria_stream.api import Settings
from memoria_stream.cli.main import main as cli_main
from memoria_stream.drivers import connect

from support.api_server import running
from support.databases import SAMPLES, make_database
from support.helpers import read_all

SAMPLE = SAMPLES / "memoria-sample.ndjson"
Seed = tuple[str, str | None, int | None]  # (table, column, line) a problem is reported at


async def cli(*argv: str) -> int:
    return await anyio.to_thread.run_sync(cli_main, list(argv))


def _rows_by_table(lines: list[dict[str, Any]]) -> dict[str, list[int]]:
    """Per table, the indexes in ``lines`` of its rows (index + 1 is the file line)."""
    out: dict[str, list[int]] = {}
    for i, obj in enumerate(lines):
        if "table" in obj:
            out.setdefault(obj["table"], []).append(i)
    return out


def seeded_file(path: Path, backend: str) -> set[Seed]:
    """The sample with a problem seeded in many of its rows; returns where each must be reported."""
    lines = [json.loads(line) for line in SAMPLE.read_text().splitlines()]
    at = _rows_by_table(lines)
    expected: set[Seed] = set()

    def seed(table: str, n: int, change: Any, column: str | None, *, only: tuple[str, ...] = ()) -> None:
        i = at[table][n]
        change(lines[i]["data"])
        if not only or backend in only:
            expected.add((table, column, i + 1))

    def put(column: str, value: Any) -> Any:
        return lambda row: row.__setitem__(column, value)

    def drop(column: str) -> Any:
        return lambda row: row.pop(column)

    servers = ("postgres", "mysql")
    seed("agents", 0, put("created_at", "not-a-date"), "created_at")
    seed("agents", 1, put("is_agent", "maybe"), "is_agent")
    seed("agents", 2, drop("name"), "name")  # NOT NULL without a default
    seed("agents", 3, put("name", "x" * 300), "name", only=servers)  # VARCHAR(255); SQLite ignores lengths
    seed("teams", 0, put("description", "a\x00b"), "description", only=("postgres",))  # NUL
    seed("teams", 1, put("created_at", "2024-02-30T00:00:00"), "created_at")
    seed("workspace_members", 6, put("na-me", 1), None)  # not a column name
    seed("workspace_members", 7, put("workspace_id", "ws-nope"), "workspace_id")  # dangling FK
    seed("workspace_members", 8, put("role", "r" * 51), "role", only=servers)  # VARCHAR(50)
    seed("workspace_members", 9, put("is_admin", "maybe"), "is_admin")
    seed("chat_history", 0, put("tokens_used", 2 ** 64), "tokens_used")  # beyond 64 bits
    seed("chat_history", 1, put("timestamp", "2024-13-45T00:00:00"), "timestamp")
    seed("chat_history", 2, put("user_input", None), "user_input")
    seed("chat_history", 3, put("team_id", "team-nope"), "team_id")
    seed("chat_history", 4, put("$json_null", "metadata"), None)  # the marker must be a list
    seed("long_term_memory", 0, put("importance_score", "high"), "importance_score")
    seed("long_term_memory", 1, put("workspace_id", "ws-nope"), "workspace_id")
    seed("long_term_memory", 2, drop("searchable_content"), "searchable_content")
    seed("short_term_memory", 0, put("chat_id", "chat-nope"), "chat_id")
    seed("short_term_memory", 1, put("expires_at", "yesterday"), "expires_at")
    seed("memory_access_events", 2, put("accessed_at", "soon"), "accessed_at")
    seed("cluster_members", 0, put("cluster_id", 999), "cluster_id")
    seed("cluster_members", 1, put("tokens", "12abc"), "tokens")
    # Duplicate primary keys inside the input: reported at the second occurrence.
    first_member = lines[at["workspace_members"][4]]["data"]["id"]
    seed("workspace_members", 5, put("id", first_member), "id")
    first_event = lines[at["memory_access_events"][0]]["data"]["id"]
    seed("memory_access_events", 1, put("id", first_event), "id")
    # Unique indexes (one column and two) and CHECK constraints, as the target's tables have them.
    seed("teams", 3, put("slug", lines[at["teams"][2]]["data"]["slug"]), "slug")
    earlier = lines[at["workspace_members"][10]]["data"]
    seed("workspace_members", 11, lambda row: row.update(workspace_id=earlier["workspace_id"],
                                                         user_id=earlier["user_id"]), "workspace_id, user_id")
    seed("long_term_memory", 3, put("y_coord", 99.0), "y_coord")  # CHECK y_coord within [-15, 15]
    seed("spatial_metadata", 0, put("namespace", ""), "namespace")  # CHECK namespace <> ''
    # The header announces a row the file does not hold.
    for entry in lines[0]["metadata"]["tables"]:
        if entry["name"] == "clusters":
            entry["row_count"] += 1
    expected.add(("clusters", None, None))
    path.write_text("".join(json.dumps(obj) + "\n" for obj in lines))
    return expected


def json_lines(out: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    objects = [orjson.loads(line) for line in out.splitlines() if line.strip()]
    assert objects[-1]["event"] == "dry_run", out
    return [o for o in objects[:-1] if o["event"] == "problem"], objects[-1]


async def table_names(url: str) -> list[str]:
    async with connect(url) as conn:
        return await conn.table_names()


async def test_dry_run_reports_every_problem_in_one_pass_and_changes_nothing(
        backend: str, db_url: str, tmp_path: Path, capsys: Any) -> None:
    bad = tmp_path / "bad.ndjson"
    expected = seeded_file(bad, backend)
    assert len(expected) >= 25 and len({t for t, _, _ in expected}) >= 6  # 27 on SQLite, 30 on PostgreSQL

    # An empty target: every problem, and not even a table created.
    assert await cli("import-data", str(bad), "--database-url", db_url, "--dry-run", "--log-format", "json") == 3
    problems, summary = json_lines(capsys.readouterr().out)
    assert {(p["table"], p["column"], p["line"]) for p in problems} == expected
    assert summary["ok"] is False and summary["problem_count"] == len(expected)
    assert {t["action"] for t in summary["tables"]} == {"create"}
    assert await table_names(db_url) == []

    # The file fixed: the dry run passes, and so does the load.
    assert await cli("import-data", str(SAMPLE), "--database-url", db_url, "--dry-run") == 0
    out = capsys.readouterr().out
    assert "the load would succeed (600 rows)" in out and re.search(r"workspace_members +create +240\n", out)
    assert await table_names(db_url) == []
    assert await cli("import-data", str(SAMPLE), "--database-url", db_url, "--quiet") == 0

    # A loaded target: the same problems, every row unchanged.
    before = await read_all(db_url)
    assert await cli("import-data", str(bad), "--database-url", db_url, "--dry-run", "--log-format", "json") == 3
    problems, summary = json_lines(capsys.readouterr().out)
    assert {(p["table"], p["column"], p["line"]) for p in problems} == expected
    assert {t["action"] for t in summary["tables"]} == {"empty"}
    assert await read_all(db_url) == before


async def test_text_report_and_max_problems_with_no_truncate(db_url: str, capsys: Any) -> None:
    assert await cli("import-data", str(SAMPLE), "--database-url", db_url, "--quiet") == 0
    before = await read_all(db_url)
    # Appending the same file again: every key is already in the target.
    assert await cli("import-data", str(SAMPLE), "--database-url", db_url, "--dry-run", "--no-truncate",
                     "--max-problems", "5") == 3
    out = capsys.readouterr().out.splitlines()
    listed = [line for line in out if line.startswith("problem: ")]
    assert len(listed) == 5
    assert "table agents, key agent-000, column agent_id: primary key already in the target" in listed[0]
    # 600 primary keys, and 276 values of unique indexes the target holds too: 12 team slugs,
    # 24 workspace slugs, 240 (workspace_id, user_id) pairs of workspace_members.
    assert out[-1] == "dry run: the load would FAIL: 876 problems (first 5 shown); nothing was changed"
    assert any("append" in line for line in out)
    assert await read_all(db_url) == before


async def test_dangling_reference_from_rows_the_target_keeps(db_url: str, tmp_path: Path, capsys: Any) -> None:
    """Importing only ``teams`` empties it: the target's workspaces must still find their teams."""
    assert await cli("import-data", str(SAMPLE), "--database-url", db_url, "--quiet") == 0
    lines = [json.loads(line) for line in SAMPLE.read_text().splitlines()]
    teams = [obj for obj in lines if obj.get("table") == "teams"]
    path = tmp_path / "teams.ndjson"
    path.write_text("".join(json.dumps(obj) + "\n" for obj in teams[1:]))  # without team-000
    assert await cli("import-data", str(path), "--database-url", db_url, "--table", "teams", "--dry-run",
                     "--log-format", "json") == 3
    problems, _ = json_lines(capsys.readouterr().out)
    assert problems and all(p["column"] == "team_id" and p["line"] is None for p in problems)
    assert all("team-000" in p["message"] and "which the load removes" in p["message"] for p in problems)


# --- Memoria-made MySQL: lossy columns ------------------------------------------------------------

async def apply_memoria_ddl(url: str) -> None:
    text = (SAMPLES / "memoria-ddl" / "mysql.sql").read_text()
    async with connect(url) as conn:
        for statement in text.split(";"):
            body = "\n".join(line for line in statement.splitlines() if not line.startswith("--")).strip()
            if body:
                await conn.execute(body)


@pytest.fixture
async def memoria_mysql(tmp_path: Path) -> AsyncIterator[str]:
    async for url in make_database("mysql", tmp_path, "memoria"):
        await apply_memoria_ddl(url)
        yield url


async def test_lossy_columns_of_memoria_mysql_are_reported(memoria_mysql: str, capsys: Any) -> None:
    before = await read_all(memoria_mysql)
    assert await cli("import-data", str(SAMPLE), "--database-url", memoria_mysql, "--dry-run",
                     "--log-format", "json") == 3
    problems, summary = json_lines(capsys.readouterr().out)
    assert problems and all("would store" in p["message"] and p["line"] is None for p in problems)
    assert any(p["column"] == "created_at" for p in problems)  # DATETIME without fractions
    assert await read_all(memoria_mysql) == before
    # Allowed: the same columns become warnings and the dry run passes.
    assert await cli("import-data", str(SAMPLE), "--database-url", memoria_mysql, "--dry-run", "--allow-lossy",
                     "--log-format", "json") == 0
    _, summary = json_lines(capsys.readouterr().out)
    assert summary["ok"] and any("--allow-lossy" in w for w in summary["warnings"])


async def test_copy_dry_run_reports_a_lossy_source_and_changes_nothing(
        memoria_mysql: str, tmp_path: Path, capsys: Any) -> None:
    source = f"sqlite:///{tmp_path / 'source.db'}"
    assert await cli("import-data", str(SAMPLE), "--database-url", source, "--quiet") == 0
    async with connect(source) as conn:  # a value a 64 KiB TEXT column would cut
        await conn.execute("UPDATE chat_history SET ai_output = ? WHERE chat_id = (SELECT min(chat_id) FROM "
                           "chat_history)", "y" * 70_000)
    before = await read_all(memoria_mysql)
    assert await cli("copy", source, memoria_mysql, "--dry-run", "--log-format", "json") == 3
    problems, summary = json_lines(capsys.readouterr().out)
    assert ("chat_history", "ai_output") in {(p["table"], p["column"]) for p in problems}
    assert {t["action"] for t in summary["tables"]} == {"empty"}
    assert await read_all(memoria_mysql) == before


async def test_copy_dry_run_passes_into_an_empty_target(backend: str, db_url: str, tmp_path: Path,
                                                        capsys: Any) -> None:
    source = f"sqlite:///{tmp_path / 'source.db'}"
    assert await cli("import-data", str(SAMPLE), "--database-url", source, "--quiet") == 0
    assert await cli("copy", source, db_url, "--dry-run") == 0
    assert "the load would succeed (600 rows)" in capsys.readouterr().out
    assert await table_names(db_url) == []


# --- the API ----------------------------------------------------------------------------------------

async def test_api_dry_run(db_url: str, backend: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.ndjson"
    expected = seeded_file(bad, backend)
    with running(Settings(db_url)) as base:
        async with httpx.AsyncClient(base_url=base, timeout=120) as client:
            refused = await client.post("/admin/migrations/import?dry_run=true", content=bad.read_bytes(),
                                        headers={"Content-Type": "application/x-ndjson"})
            assert refused.status_code == 422, refused.text
            body = refused.json()
            assert body["ok"] is False and body["problem_count"] == len(expected)
            assert {(p["table"], p["column"], p["line"]) for p in body["problems"]} == expected
            assert await table_names(db_url) == []
            passed = await client.post("/admin/migrations/import?dry_run=true", content=SAMPLE.read_bytes(),
                                       headers={"Content-Type": "application/x-ndjson"})
            assert passed.status_code == 200, passed.text
            assert passed.json()["ok"] is True and passed.json()["total_rows"] == 600
    assert await table_names(db_url) == []


async def test_dry_run_into_a_missing_sqlite_file_creates_nothing(tmp_path: Path, capsys: Any) -> None:
    """A file that does not exist yet is checked as the empty database the load would create."""
    target = tmp_path / "not-yet.db"
    status = await cli("import-data", str(SAMPLES / "memoria-sample.ndjson"), "--database-url",
                       f"sqlite:///{target}", "--dry-run")
    assert status == 0, capsys.readouterr().err
    assert not target.exists()


async def test_a_refused_load_points_at_the_dry_run_which_names_the_rows(
        db_url: str, tmp_path: Path, capsys: Any) -> None:
    lines = [json.loads(line) for line in SAMPLE.read_text().splitlines()]
    teams = _rows_by_table(lines)["teams"]
    lines[teams[5]]["data"]["slug"] = lines[teams[1]]["data"]["slug"]  # a slug twice: the unique index refuses
    bad = tmp_path / "slugs.ndjson"
    bad.write_text("".join(json.dumps(obj) + "\n" for obj in lines))
    assert await cli("import-data", str(bad), "--database-url", db_url, "--quiet") == 6
    err = capsys.readouterr().err
    assert "nothing was changed; `import-data --dry-run` lists every row" in err
    assert await table_names(db_url) == []
    assert await cli("import-data", str(bad), "--database-url", db_url, "--dry-run", "--log-format", "json") == 3
    problems, _ = json_lines(capsys.readouterr().out)
    assert [(p["table"], p["column"], p["line"]) for p in problems] == [("teams", "slug", teams[5] + 1)]
    assert problems[0]["message"].startswith(f"duplicate value of unique idx_team_slug (first at line {teams[1] + 1})")


async def test_a_broken_check_constraint_is_an_integrity_failure_on_every_backend(
        db_url: str, tmp_path: Path, capsys: Any) -> None:
    lines = [json.loads(line) for line in SAMPLE.read_text().splitlines()]
    memory = _rows_by_table(lines)["long_term_memory"]
    lines[memory[4]]["data"]["y_coord"] = 99.0  # CHECK y_coord within [-15, 15]
    bad = tmp_path / "check.ndjson"
    bad.write_text("".join(json.dumps(obj) + "\n" for obj in lines))
    assert await cli("import-data", str(bad), "--database-url", db_url, "--quiet") == 6
    assert "ck_long_term_y_coord_range" in capsys.readouterr().err
    assert await table_names(db_url) == []
    assert await cli("import-data", str(bad), "--database-url", db_url, "--dry-run", "--log-format", "json") == 3
    problems, _ = json_lines(capsys.readouterr().out)
    assert [(p["table"], p["column"], p["line"], p["value"]) for p in problems] == [
        ("long_term_memory", "y_coord", memory[4] + 1, "99.0")]
