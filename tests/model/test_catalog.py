"""Check memoria_stream.model.catalog against the DDL of a real Memoria SQLite database."""

from __future__ import annotations

import re
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from memoria_stream.model import catalog
from memoria_stream.model.catalog import (
    EXPORT_ORDER,
    TABLES,
    Column,
    default_for,
    delete_order,
    get_table,
    insert_order,
)
from memoria_stream.model.types import ColumnType as T

SAMPLE_DB = Path(__file__).resolve().parents[1] / "fixtures" / "memoria-sample.db"

MEMORIA_EXPORT_TABLES = (
    "agents",
    "teams",
    "workspaces",
    "workspace_members",
    "chat_history",
    "long_term_memory",
    "short_term_memory",
    "spatial_metadata",
    "memory_access_events",
    "link_memory_threads",
    "thread_events",
    "thread_message_links",
    "clusters",
    "cluster_members",
)

_SQLITE_TYPES = {
    "TEXT": T.TEXT,
    "INTEGER": T.INTEGER,
    "FLOAT": T.FLOAT,
    "BOOLEAN": T.BOOLEAN,
    "DATETIME": T.TIMESTAMP,
    "JSON": T.JSON,
}


@pytest.fixture(scope="module")
def db():
    # The catalogue is checked against Memoria's own database: its absence is a failure, not a skip.
    assert SAMPLE_DB.exists(), f"sample database not found: {SAMPLE_DB}"
    conn = sqlite3.connect(f"file:{SAMPLE_DB}?mode=ro", uri=True)
    try:
        yield conn
    finally:
        conn.close()


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _table_info(conn: sqlite3.Connection, table: str) -> list[tuple]:
    # (cid, name, type, notnull, dflt_value, pk)
    return conn.execute(f"PRAGMA table_info({_quote(table)})").fetchall()


def _indexes(conn: sqlite3.Connection, table: str) -> dict[str, tuple[tuple[str, ...], bool, str]]:
    """name -> (columns, unique, origin) for every index of ``table``, autoindexes included."""
    out = {}
    for _seq, name, unique, origin, _partial in conn.execute(f"PRAGMA index_list({_quote(table)})"):
        cols = conn.execute(f"PRAGMA index_info({_quote(name)})").fetchall()  # (seqno, cid, name)
        out[name] = (tuple(c[2] for c in sorted(cols)), bool(unique), origin)
    return out


def _foreign_keys(conn: sqlite3.Connection, table: str) -> set[tuple]:
    """{(columns, parent, parent_columns, on_delete)} from PRAGMA foreign_key_list."""
    rows = conn.execute(f"PRAGMA foreign_key_list({_quote(table)})").fetchall()
    # (id, seq, table, from, to, on_update, on_delete, match)
    by_id: dict[int, list[tuple]] = {}
    for row in rows:
        by_id.setdefault(row[0], []).append(row)
    out = set()
    for parts in by_id.values():
        parts.sort(key=lambda r: r[1])
        out.add(
            (
                tuple(r[3] for r in parts),
                parts[0][2],
                tuple(r[4] for r in parts),
                parts[0][6],
            )
        )
    return out


# --- the table set -----------------------------------------------------------


def test_export_order_matches_memoria():
    assert EXPORT_ORDER == MEMORIA_EXPORT_TABLES
    assert tuple(TABLES) == MEMORIA_EXPORT_TABLES
    assert all(TABLES[name].name == name for name in TABLES)


def test_sample_db_has_every_catalogue_table(db):
    names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert set(EXPORT_ORDER) <= names


# --- per-table structure vs. PRAGMA ------------------------------------------


@pytest.mark.parametrize("name", MEMORIA_EXPORT_TABLES)
def test_columns_order_and_not_null(db, name):
    table = TABLES[name]
    info = _table_info(db, name)
    assert table.column_names == tuple(r[1] for r in info)
    assert [not c.nullable for c in table.columns] == [bool(r[3]) for r in info]


@pytest.mark.parametrize("name", MEMORIA_EXPORT_TABLES)
def test_column_types_and_lengths(db, name):
    table = TABLES[name]
    for col, row in zip(table.columns, _table_info(db, name)):
        declared = row[2].upper()
        m = re.fullmatch(r"VARCHAR\((\d+)\)", declared)
        if m:
            assert (col.name, col.type, col.length) == (col.name, T.TEXT, int(m.group(1)))
        else:
            assert (col.name, col.type, col.length) == (col.name, _SQLITE_TYPES[declared], None)
        # Memoria's defaults are Python-side only: no DEFAULT clause in the DDL.
        assert row[4] is None


@pytest.mark.parametrize("name", MEMORIA_EXPORT_TABLES)
def test_primary_key(db, name):
    table = TABLES[name]
    pk = tuple(r[1] for r in sorted((r for r in _table_info(db, name) if r[5]), key=lambda r: r[5]))
    assert table.primary_key == pk
    for col in table.columns:
        # Integer id primary keys are autoincrement (rowid aliases on SQLite); nothing else is.
        assert col.autoincrement == (col.primary_key and col.type is T.INTEGER), col.name


@pytest.mark.parametrize("name", MEMORIA_EXPORT_TABLES)
def test_indexes(db, name):
    table = TABLES[name]
    actual = {
        idx: (cols, unique)
        for idx, (cols, unique, _origin) in _indexes(db, name).items()
        if not idx.startswith("sqlite_autoindex_")
    }
    expected = {ix.name: (ix.columns, ix.unique) for ix in table.indexes}
    assert expected == actual
    assert len(table.indexes) == len(expected)  # no duplicated names


@pytest.mark.parametrize("name", MEMORIA_EXPORT_TABLES)
def test_unique_constraints(db, name):
    table = TABLES[name]
    actual = sorted(
        cols for _n, (cols, unique, origin) in _indexes(db, name).items() if unique and origin == "u"
    )
    assert sorted(uc.columns for uc in table.unique_constraints) == actual
    assert all(uc.unique for uc in table.unique_constraints)
    # The constraint names are only visible in the CREATE TABLE text.
    sql = db.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone()[0]
    named = {
        m.group(1): tuple(c.strip() for c in m.group(2).split(","))
        for m in re.finditer(r"CONSTRAINT\s+(\w+)\s+UNIQUE\s*\(([^)]*)\)", sql)
    }
    assert {uc.name: uc.columns for uc in table.unique_constraints} == named


@pytest.mark.parametrize("name", MEMORIA_EXPORT_TABLES)
def test_foreign_keys(db, name):
    table = TABLES[name]
    expected = {(fk.columns, fk.parent, fk.parent_columns, fk.on_delete) for fk in table.foreign_keys}
    assert expected == _foreign_keys(db, name)
    assert len(table.foreign_keys) == len(expected)


@pytest.mark.parametrize("name", MEMORIA_EXPORT_TABLES)
def test_checks(db, name):
    table = TABLES[name]
    sql = db.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone()[0]
    actual = {}
    for m in re.finditer(r"CONSTRAINT\s+(\w+)\s+CHECK\s*\((.*)\),?\s*$", sql, flags=re.MULTILINE):
        expr = m.group(2).strip()
        # SQLAlchemy wraps the expression in an extra pair of parentheses.
        if expr.startswith("(") and expr.endswith(")"):
            expr = expr[1:-1]
        actual[m.group(1)] = expr
    assert {c.name: c.expression for c in table.checks} == actual


# --- ordering ----------------------------------------------------------------


def test_export_order_is_topological(db):
    position = {name: i for i, name in enumerate(EXPORT_ORDER)}
    for name in EXPORT_ORDER:
        for _cols, parent, _pcols, _on_delete in _foreign_keys(db, name):
            if parent == name:
                continue
            assert parent in position, f"{name} references non-exported {parent}"
            assert position[parent] < position[name], f"{parent} must come before {name}"
        for parent in TABLES[name].parents:
            assert position[parent] < position[name]


def test_insert_and_delete_order():
    names = ["cluster_members", "zzz_custom", "teams", "clusters", "aaa_custom", "workspaces"]
    assert insert_order(names) == [
        "teams",
        "workspaces",
        "clusters",
        "cluster_members",
        "zzz_custom",
        "aaa_custom",
    ]
    assert delete_order(names) == list(reversed(insert_order(names)))
    assert insert_order(reversed(EXPORT_ORDER)) == list(EXPORT_ORDER)
    assert delete_order(EXPORT_ORDER) == list(reversed(EXPORT_ORDER))
    assert insert_order([]) == []


def test_get_table():
    assert get_table("agents") is TABLES["agents"]
    assert get_table("retention_policy_audits") is None


# --- defaults ----------------------------------------------------------------


def test_default_for_values_and_callables():
    agents = TABLES["agents"]
    assert default_for(agents.column("is_agent")) is True
    first, second = default_for(agents.column("metadata")), default_for(agents.column("metadata"))
    assert first == {} and first is not second
    assert default_for(agents.column("role")) is None

    before = datetime.now(timezone.utc).replace(tzinfo=None)
    ts = default_for(agents.column("created_at"))
    assert isinstance(ts, datetime) and ts.tzinfo is None
    assert before - timedelta(seconds=1) <= ts <= datetime.now(timezone.utc).replace(tzinfo=None)

    assert default_for(Column("x", T.TEXT)) is None
    assert default_for(Column("x", T.INTEGER, default=0)) == 0


@pytest.mark.parametrize(
    "table, column, value",
    [
        ("workspace_members", "role", "member"),
        ("workspace_members", "is_admin", False),
        ("chat_history", "namespace", "default"),
        ("chat_history", "tokens_used", 0),
        ("chat_history", "metadata", None),
        ("long_term_memory", "importance_score", 0.5),
        ("long_term_memory", "retention_type", "long_term"),
        ("long_term_memory", "classification", "conversational"),
        ("long_term_memory", "memory_importance", "medium"),
        ("long_term_memory", "confidence_score", 0.8),
        ("long_term_memory", "promotion_eligible", False),
        ("short_term_memory", "retention_type", "short_term"),
        ("memory_access_events", "access_type", "retrieval"),
        ("link_memory_threads", "relation", "related"),
        ("thread_message_links", "sequence_index", None),
        ("thread_message_links", "timestamp", None),
        ("clusters", "weight", 0.0),
        ("cluster_members", "tokens", 0),
    ],
)
def test_literal_defaults(table, column, value):
    col = TABLES[table].column(column)
    assert col is not None
    assert col.default == value and type(col.default) is type(value)


def test_timestamp_defaults_are_utcnow():
    for table in TABLES.values():
        for col in table.columns:
            if col.type is T.TIMESTAMP and not col.nullable:
                assert col.default is catalog.utcnow, f"{table.name}.{col.name}"
            elif col.type is T.TIMESTAMP:
                assert col.default is None, f"{table.name}.{col.name}"
