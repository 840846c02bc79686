"""migrate list / migrate run and the migration scripts, against real SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import dataclasses
import textwrap
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import pytest

from memoria_stream.model.catalog import EXPORT_ORDER, TABLES, Column, Index, Table, default_for
from memoria_stream.cli.main import main as cli_main
from memoria_stream.drivers import Connection, connect
from memoria_stream.migrations.helpers import foreign_keys
from memoria_stream.migrations.record import TABLE as RECORD_TABLE
from memoria_stream.migrations.discover import discover, migrations_root
from memoria_stream.transfer.schema import create_index_sql, create_table_sql, ensure_tables
from memoria_stream.model.types import ColumnType as T

ROOT = migrations_root()
SCRIPT_NAMES = [
    "add_cluster_centroids", "add_cluster_member_counts", "add_cluster_member_token_columns",
    "add_cluster_token_columns", "add_memory_embeddings", "add_policy_artifacts", "add_spatial_namespace",
    "add_team_support", "add_timestamp_columns", "add_workspace_support", "remove_manual_x_override",
    "rename_chat_metadata_column", "widen_mysql_columns",
]

# Memoria's old shape: the columns the scripts add are missing, chat_history has metadata_json,
# and the columns later migrations drop are still there (one of them indexed).
CREATED_BY_SCRIPTS = ("teams", "workspaces", "workspace_members")
REMOVED = {
    "chat_history": {"team_id", "workspace_id", "metadata"},
    "long_term_memory": {"team_id", "workspace_id", "embedding", "timestamp"},
    "short_term_memory": {"team_id", "workspace_id", "embedding"},
    "spatial_metadata": {"namespace", "team_id", "timestamp", "workspace_id"},
    "memory_access_events": {"team_id", "workspace_id"},
    "clusters": {"y_centroid", "z_centroid", "total_tokens", "total_chars"},
    "cluster_members": {"tokens", "chars"},
}
LEGACY = {
    "chat_history": (Column("metadata_json", T.JSON),),
    "long_term_memory": (Column("manual_x_override", T.FLOAT),),
    "short_term_memory": (Column("manual_x_override", T.FLOAT),),
    "spatial_metadata": (Column("manual_x_override", T.FLOAT),),
}
# Dropped only by the archived script, which --all never runs.
ARCHIVED_LEGACY = {t: (Column("emotional_intensity", T.FLOAT),) for t in ("long_term_memory", "short_term_memory")}
LEGACY_INDEXES = {"long_term_memory": (Index("idx_long_term_manual_x", ("manual_x_override",)),)}
T0 = datetime(2024, 5, 1, 12, 30, 15, 123000)


def _old_table(name: str, archived: bool = False) -> Table:
    table, gone = TABLES[name], REMOVED.get(name, set())
    legacy = LEGACY.get(name, ()) + (ARCHIVED_LEGACY.get(name, ()) if archived else ())

    def keeps(columns: tuple[str, ...]) -> bool:
        return not set(columns) & gone

    return dataclasses.replace(
        table,
        columns=tuple(c for c in table.columns if c.name not in gone) + legacy,
        foreign_keys=tuple(fk for fk in table.foreign_keys
                           if keeps(fk.columns) and fk.parent not in CREATED_BY_SCRIPTS),
        indexes=tuple(ix for ix in table.indexes if keeps(ix.columns)) + LEGACY_INDEXES.get(name, ()),
        unique_constraints=tuple(u for u in table.unique_constraints if keeps(u.columns)),
        checks=tuple(ck for ck in table.checks if not any(g in ck.expression for g in gone)),
    )


def _filler(column: Column) -> Any:
    value = default_for(column)
    if value is not None or column.nullable:
        return value
    return {T.TEXT: "x", T.INTEGER: 0, T.FLOAT: 0.0, T.BOOLEAN: False, T.TIMESTAMP: T0, T.JSON: {"k": 1}}[column.type]


ROWS: dict[str, list[dict[str, Any]]] = {
    "chat_history": [
        {"chat_id": "c1", "user_input": "hi", "ai_output": "hello", "model": "m", "session_id": "s",
         "timestamp": T0, "metadata_json": {"source": "old", "n": 1}},
        {"chat_id": "c2", "user_input": "q", "ai_output": "a", "model": "m", "session_id": "s",
         "timestamp": T0, "metadata_json": None},
    ],
    "long_term_memory": [{"memory_id": "l1", "processed_data": {"p": 1}, "category_primary": "fact",
                          "searchable_content": "s", "summary": "sum", "manual_x_override": 1.5}],
    "short_term_memory": [{"memory_id": "s1", "chat_id": "c1", "processed_data": {"p": 2},
                           "category_primary": "fact", "searchable_content": "s", "summary": "sum"}],
    "spatial_metadata": [{"memory_id": "l1", "x": 1.0, "y": 2.0, "z": -3.0}],
    "memory_access_events": [{"id": 1, "memory_id": "l1", "accessed_at": T0}],
    "clusters": [{"id": 1, "summary": "cluster", "weight": 0.25}],
    "cluster_members": [{"id": 1, "memory_id": "l1", "summary": "member", "cluster_id": 1}],
}


async def _insert(conn: Connection, table: Table, row: dict[str, Any]) -> None:
    encoders = conn.capabilities.encoders
    values = []
    for column in table.columns:
        value = row[column.name] if column.name in row else _filler(column)
        values.append(None if value is None else encoders.get(column.type, lambda v: v)(value))
    await conn.write(table.name, list(table.column_names), [tuple(values)])


async def build_old_shape(url: str, *, archived: bool = False) -> None:
    async with connect(url) as conn:
        for name in EXPORT_ORDER:
            if name in CREATED_BY_SCRIPTS:
                continue
            table = _old_table(name, archived)
            await conn.execute(create_table_sql(conn.capabilities, table))
            for statement in create_index_sql(conn.capabilities, table):
                await conn.execute(statement)
            for row in ROWS.get(name, []):
                await _insert(conn, table, row)


async def shape(url: str) -> dict[str, Any]:
    """Columns (name, canonical type, nullability), index names and FKs of every catalogue table."""
    async with connect(url) as conn:
        sqlite = conn.capabilities.dialect == "sqlite"
        result: dict[str, Any] = {"tables": sorted(set(await conn.table_names()) & set(TABLES))}
        for name in TABLES:
            # SQLite cannot make an added column NOT NULL, so nullability is compared elsewhere only.
            columns = sorted((c.name, c.type.value, None if sqlite else c.nullable) for c in await conn.columns(name))
            result[name] = (columns, sorted(await conn.index_names(name)), sorted(await foreign_keys(conn, name)))
        return result


async def fetch(url: str, sql: str) -> list[tuple[Any, ...]]:
    async with connect(url) as conn:
        return await conn.fetch(sql)


async def cli(*argv: str) -> int:
    return await anyio.to_thread.run_sync(cli_main, list(argv))


# --- the whole journey on every backend ----------------------------------------------------------

async def test_run_all_brings_old_shape_to_catalogue(db_url: str, second_db_url: str, capsys: Any) -> None:
    await build_old_shape(db_url)
    async with connect(second_db_url) as conn:
        await ensure_tables(conn, list(TABLES))
    expected = await shape(second_db_url)

    assert await cli("migrate", "run", "--all", "--database-url", db_url) == 0
    out = capsys.readouterr().out
    for name in SCRIPT_NAMES:
        assert f"Executed migration '{name}'" in out
    migrated = await shape(db_url)
    for name in TABLES:
        assert migrated[name] == expected[name], name
    assert migrated["tables"] == expected["tables"]
    await _assert_rows_kept_and_backfilled(db_url)

    # Applied migrations are recorded with their checksum; --all now has nothing to do.
    recorded = await fetch(db_url, f"SELECT name, checksum, duration_ms FROM {RECORD_TABLE} ORDER BY name")
    assert [r[0] for r in recorded] == SCRIPT_NAMES
    assert all(len(r[1]) == 64 and r[2] >= 0 for r in recorded)
    assert await cli("migrate", "run", "--all", "--database-url", db_url) == 0
    assert "No pending migrations" in capsys.readouterr().out

    # Every script is idempotent on its own: running each again changes nothing.
    before_rows = await _all_rows(db_url)
    for name in SCRIPT_NAMES:
        assert await cli("migrate", "run", name, "--database-url", db_url) == 0, name
    capsys.readouterr()
    assert await shape(db_url) == migrated
    assert await _all_rows(db_url) == before_rows

    assert await cli("migrate", "list", "--database-url", db_url) == 0
    listing = capsys.readouterr().out
    assert all(line.split()[1] == "applied" for line in listing.splitlines()[:-1])
    assert "13 applied, 0 pending" in listing


async def _all_rows(url: str) -> dict[str, list[tuple[Any, ...]]]:
    async with connect(url) as conn, conn.snapshot():
        rows = {}
        for name in ROWS:
            columns = [c.name for c in await conn.columns(name)]
            batches = [batch async for batch in conn.read(name, columns, batch_rows=100)]
            rows[name] = sorted(tuple(r) for batch in batches for r in batch)
        return rows


async def _assert_rows_kept_and_backfilled(url: str) -> None:
    async with connect(url) as conn:
        decode = conn.capabilities.decoders
        chats = await conn.fetch("SELECT chat_id, user_input, metadata FROM chat_history ORDER BY chat_id")
        as_json = decode.get(T.JSON, lambda v: v)
        assert [(c, u, None if m is None else as_json(m)) for c, u, m in chats] == [
            ("c1", "hi", {"source": "old", "n": 1}), ("c2", "q", None)]
        assert await conn.fetch("SELECT memory_id, chat_id FROM short_term_memory") == [("s1", "c1")]
        spatial = await conn.fetch("SELECT memory_id, namespace, x, y, z, timestamp FROM spatial_metadata")
        assert [r[:5] for r in spatial] == [("l1", "default", 1.0, 2.0, -3.0)]
        long_term = await conn.fetch("SELECT memory_id, summary, embedding, timestamp FROM long_term_memory")
        assert [r[:3] for r in long_term] == [("l1", "sum", None)]
        assert spatial[0][5] is not None and long_term[0][3] is not None  # back-filled with "now"
        assert await conn.fetch("SELECT id, weight, total_tokens, total_chars, y_centroid FROM clusters") == [
            (1, 0.25, 0, 0, None)]
        assert await conn.fetch("SELECT id, cluster_id, tokens, chars FROM cluster_members") == [(1, 1, 0, 0)]
        assert await conn.fetch("SELECT id, memory_id, workspace_id FROM memory_access_events") == [(1, "l1", None)]
        assert "policy_artifacts" in await conn.table_names()


async def test_workspace_backfill_from_teams(db_url: str, capsys: Any) -> None:
    await build_old_shape(db_url)
    assert await cli("migrate", "run", "add_team_support", "--database-url", db_url) == 0
    async with connect(db_url) as conn:
        await _insert(conn, TABLES["teams"], {"team_id": "t1", "name": "Alpha", "slug": "alpha", "created_at": T0})
        await conn.execute("UPDATE chat_history SET team_id = 't1' WHERE chat_id = 'c1'")
        await conn.execute("UPDATE memory_access_events SET team_id = 'ghost'")  # no FK: must be left alone
    assert await cli("migrate", "run", "add_workspace_support", "--database-url", db_url) == 0
    assert await cli("migrate", "run", "add_workspace_support", "--database-url", db_url) == 0
    capsys.readouterr()
    assert await fetch(db_url, "SELECT workspace_id, name, slug, team_id FROM workspaces") == [
        ("t1", "Alpha", "alpha", "t1")]
    assert await fetch(db_url, "SELECT chat_id, workspace_id FROM chat_history ORDER BY chat_id") == [
        ("c1", "t1"), ("c2", None)]
    assert await fetch(db_url, "SELECT workspace_id FROM memory_access_events") == [(None,)]


async def test_run_all_on_empty_database(db_url: str, capsys: Any) -> None:
    assert await cli("migrate", "run", "--all", "--database-url", db_url) == 0
    capsys.readouterr()
    created = set(await fetch_tables(db_url))
    assert created >= set(TABLES) - {"agents", "link_memory_threads", "thread_events", "thread_message_links"}
    assert {"policy_artifacts", RECORD_TABLE} <= created
    assert await cli("migrate", "run", "--all", "--database-url", db_url) == 0
    assert "No pending migrations" in capsys.readouterr().out


async def fetch_tables(url: str) -> list[str]:
    async with connect(url) as conn:
        return await conn.table_names()


async def test_workspace_support_on_empty_database(db_url: str, capsys: Any) -> None:
    assert await cli("migrate", "run", "add_workspace_support", "--database-url", db_url) == 0
    capsys.readouterr()
    async with connect(db_url) as conn:
        members = [c.name for c in await conn.columns("workspace_members")]
        assert members == list(TABLES["workspace_members"].column_names)  # with is_agent
        assert "workspace_id" in [c.name for c in await conn.columns("memory_access_events")]


async def test_rename_merges_when_both_columns_exist(db_url: str, capsys: Any) -> None:
    table = TABLES["chat_history"]
    both = dataclasses.replace(table, columns=table.columns + LEGACY["chat_history"], foreign_keys=())
    async with connect(db_url) as conn:
        await conn.execute(create_table_sql(conn.capabilities, both))
        base = {"user_input": "u", "ai_output": "a", "model": "m", "session_id": "s", "timestamp": T0}
        await _insert(conn, both, {**base, "chat_id": "c1", "metadata": {"new": 1}, "metadata_json": {"old": 1}})
        await _insert(conn, both, {**base, "chat_id": "c2", "metadata": None, "metadata_json": {"old": 2}})
    assert await cli("migrate", "run", "rename_chat_metadata_column", "--database-url", db_url) == 0
    assert "copied metadata_json into metadata" in capsys.readouterr().out
    async with connect(db_url) as conn:
        assert "metadata_json" not in [c.name for c in await conn.columns("chat_history")]
        as_json = conn.capabilities.decoders.get(T.JSON, lambda v: v)
        rows = await conn.fetch("SELECT chat_id, metadata FROM chat_history ORDER BY chat_id")
    assert [(c, as_json(m)) for c, m in rows] == [("c1", {"new": 1}), ("c2", {"old": 2})]
    assert await cli("migrate", "run", "rename_chat_metadata_column", "--database-url", db_url) == 0
    assert "metadata is up to date" in capsys.readouterr().out


async def test_archived_script_needs_the_flag(db_url: str, capsys: Any) -> None:
    await build_old_shape(db_url, archived=True)
    assert await cli("migrate", "run", "remove_emotional_intensity", "--database-url", db_url) == 3
    assert "unknown migration: remove_emotional_intensity (it is archived" in capsys.readouterr().err
    assert await cli("migrate", "run", "remove_emotional_intensity", "--include-archived",
                     "--database-url", db_url) == 0
    capsys.readouterr()
    async with connect(db_url) as conn:
        for table in ("short_term_memory", "long_term_memory"):
            assert "emotional_intensity" not in [c.name for c in await conn.columns(table)]
    rows = await fetch(db_url, "SELECT memory_id, manual_x_override FROM long_term_memory")
    assert rows == [("l1", 1.5)]


# --- failures ------------------------------------------------------------------------------------

def _write(folder: Path, name: str, body: str) -> None:
    (folder / name).write_text(textwrap.dedent(body).lstrip())


async def test_failing_script_stops_run_and_is_not_recorded(db_url: str, tmp_path: Path, capsys: Any) -> None:
    folder = tmp_path / "migrations"
    folder.mkdir()
    _write(folder, "a_first.py", '''
        """Succeeds."""
        print("first ran")
    ''')
    _write(folder, "b_broken.py", '''
        """Fails like a script should: one line on stderr, non-zero exit."""
        from memoria_stream.errors import DatabaseError
        from memoria_stream.migrations.helpers import run_script

        async def main():
            print("about to fail")
            raise DatabaseError("the disk is on fire")

        run_script(main)
    ''')
    _write(folder, "c_after.py", '''
        """Must never run."""
        import os
        open(os.environ["MARKER"], "w").close()
    ''')
    marker = tmp_path / "marker"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MARKER", str(marker))
        code = await cli("migrate", "run", "--all", "--migrations-dir", str(folder), "--database-url", db_url)
    captured = capsys.readouterr()
    assert code == 1
    assert "first ran" in captured.out and "about to fail" in captured.out
    assert "migration b_broken failed (exit status 1): b_broken: error: the disk is on fire" in captured.err
    assert not marker.exists()
    assert await fetch(db_url, f"SELECT name FROM {RECORD_TABLE}") == [("a_first",)]

    code = await cli("migrate", "run", "b_broken.py", "--migrations-dir", str(folder), "--database-url", db_url)
    assert code == 1 and "the disk is on fire" in capsys.readouterr().err
    assert await fetch(db_url, f"SELECT name FROM {RECORD_TABLE}") == [("a_first",)]


async def test_script_traceback_is_a_failure(tmp_path: Path, capsys: Any) -> None:
    folder = tmp_path / "migrations"
    folder.mkdir()
    _write(folder, "crash.py", 'raise RuntimeError("unexpected state")\n')
    _write(folder, "quiet_exit.py", 'import sys\nsys.exit(4)\n')
    url = f"sqlite:///{tmp_path / 'x.db'}"
    assert await cli("migrate", "run", "crash", "--migrations-dir", str(folder), "--database-url", url) == 1
    assert "migration crash failed (exit status 1): RuntimeError: unexpected state" in capsys.readouterr().err
    assert await cli("migrate", "run", "quiet_exit", "--migrations-dir", str(folder), "--database-url", url) == 1
    assert "migration quiet_exit failed (exit status 4): no message" in capsys.readouterr().err


async def test_unknown_and_ambiguous_names(tmp_path: Path, capsys: Any) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    assert await cli("migrate", "run", "nope", "--database-url", url) == 3
    assert capsys.readouterr().err.strip() == "memoria-stream: error: unknown migration: nope"
    folder = tmp_path / "migrations"
    (folder / "sub").mkdir(parents=True)
    _write(folder, "twin.py", '"""One."""\n')
    _write(folder / "sub", "twin.py", '"""Two."""\n')
    assert await cli("migrate", "run", "twin", "--migrations-dir", str(folder), "--database-url", url) == 3
    err = capsys.readouterr().err
    assert "ambiguous (sub/twin.py, twin.py)" in err and len(err.strip().splitlines()) == 1
    assert await cli("migrate", "run", "sub/twin.py", "--dry-run", "--migrations-dir", str(folder),
                     "--database-url", url) == 0
    assert str(folder / "sub" / "twin.py") in capsys.readouterr().out
    assert not (tmp_path / "x.db").exists()


# --- dry run and listing -------------------------------------------------------------------------

async def test_dry_run_shows_path_and_masked_url(capsys: Any) -> None:
    url = "postgresql://u:secret@127.0.0.1/test"
    assert await cli("migrate", "run", "add_team_support", "--database-url", url, "--dry-run") == 0
    captured = capsys.readouterr()
    script = (ROOT / "add_team_support.py").resolve()
    assert captured.out.strip() == (
        f"Dry run: would execute add_team_support located at {script} against postgresql://u:***@127.0.0.1/test.")
    assert script.is_absolute() and script.exists()
    assert "secret" not in captured.out + captured.err


async def test_dry_run_all_on_missing_sqlite_file_changes_nothing(tmp_path: Path, capsys: Any) -> None:
    url = f"sqlite:///{tmp_path / 'none.db'}"
    assert await cli("migrate", "run", "--all", "--dry-run", "--database-url", url) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[4] for line in lines] == SCRIPT_NAMES
    assert not (tmp_path / "none.db").exists()


def test_list_shows_descriptions(tmp_path: Path, capsys: Any) -> None:
    url = f"sqlite:///{tmp_path / 'absent.db'}"
    assert cli_main(["migrate", "list", "--database-url", url]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == SCRIPT_NAMES
    scripts = {m.name: m for m in discover(ROOT)}
    for line in lines:
        name = line.split()[0]
        assert line.endswith(str(scripts[name].description)) and scripts[name].description
    assert not (tmp_path / "absent.db").exists()

    assert cli_main(["migrate", "list", "--include-archived", "--database-url", url]) == 0
    archived = [line for line in capsys.readouterr().out.splitlines() if line.endswith("(archived)")]
    assert len(archived) == 1 and archived[0].startswith("remove_emotional_intensity  ")


def test_list_marks_scripts_that_do_not_parse(tmp_path: Path, capsys: Any, monkeypatch: Any) -> None:
    folder = tmp_path / "migrations"
    (folder / "archive").mkdir(parents=True)
    (folder / "nested" / "archive").mkdir(parents=True)
    _write(folder, "good.py", '"""Does a thing.\n\nMore text."""\n')
    _write(folder, "bad.py", 'def broken(:\n')
    _write(folder, "__init__.py", "")
    _write(folder / "archive", "old.py", '"""Old."""\n')
    _write(folder / "nested" / "archive", "deep.py", '"""Not archived: only <root>/archive counts."""\n')
    monkeypatch.setenv("MEMORIA_MIGRATIONS_DIR", str(folder))
    url = f"sqlite:///{tmp_path / 'absent.db'}"
    assert cli_main(["migrate", "list", "--database-url", url]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "bad   ! syntax error on line 1: invalid syntax",
        "deep  Not archived: only <root>/archive counts.",
        "good  Does a thing.",
    ]
    assert cli_main(["migrate", "run", "--all", "--database-url", url]) == 3
    assert "migration bad cannot be parsed" in capsys.readouterr().err
