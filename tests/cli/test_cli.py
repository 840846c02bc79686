"""The export-data / import-data commands as an operator runs them: real processes, real servers."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson
import pytest

from memoria_stream.model.catalog import TABLES
from memoria_stream.drivers import connect

from support.processes import assert_clean_failure, run
from support.dataset import build_dataset, load_dataset
from support.helpers import assert_same, read_all


@pytest.fixture
async def loaded(db_url: str) -> str:
    async with connect(db_url) as conn:
        await load_dataset(conn, build_dataset(4))
    return db_url


async def test_stdin_import_needs_no_format(loaded: str, second_db_url: str) -> None:
    export = run("export-data", "-", "--format", "ndjson", "--database-url", loaded)
    assert export.returncode == 0, export.stderr.decode()
    assert export.stdout.startswith(b'{"metadata"') and b"Exported" in export.stderr  # data on stdout only
    result = run("import", "-", "--database-url", second_db_url, stdin=export.stdout)
    assert result.returncode == 0, result.stderr.decode()
    assert_same(await read_all(loaded), await read_all(second_db_url))


async def test_gzipped_ndjson_file(loaded: str, second_db_url: str, tmp_path: Path) -> None:
    plain = run("export-data", "-", "--format", "ndjson", "--database-url", loaded).stdout
    dump = tmp_path / "dump.ndjson.gz"
    dump.write_bytes(gzip.compress(plain))
    result = run("import-data", str(dump), "--database-url", second_db_url)
    assert result.returncode == 0, result.stderr.decode()
    assert_same(await read_all(loaded), await read_all(second_db_url))


async def test_export_to_gz_file_round_trips(loaded: str, second_db_url: str, tmp_path: Path) -> None:
    dump = tmp_path / "dump.json.gz"
    assert run("export-data", str(dump), "--database-url", loaded).returncode == 0
    assert gzip.decompress(dump.read_bytes()).startswith(b'{\n  "metadata"')
    assert run("import-data", str(dump), "--database-url", second_db_url).returncode == 0
    assert_same(await read_all(loaded), await read_all(second_db_url))


async def test_table_filter_replaces_only_that_table(loaded: str, tmp_path: Path) -> None:
    before = await read_all(loaded)
    fresh = build_dataset(4)
    for row in fresh["chat_history"]:
        row["user_input"] = "replaced"
    lines = [orjson.dumps({"metadata": {"format": "ndjson"}})]
    for name, rows in fresh.items():
        lines += [orjson.dumps({"table": name, "data": {k: _plain(v) for k, v in row.items()}}) for row in rows]
    dump = tmp_path / "new.ndjson"
    dump.write_bytes(b"\n".join(lines) + b"\n")
    result = run("import-data", str(dump), "--table", "chat_history", "--database-url", loaded)
    assert result.returncode == 0, result.stderr.decode()
    after = await read_all(loaded)
    assert [r["user_input"] for r in after["chat_history"]] == ["replaced"] * 4
    for name in TABLES:
        if name != "chat_history":
            assert_same({name: before[name]}, after)


async def test_input_without_recognised_tables_changes_nothing(loaded: str, tmp_path: Path) -> None:
    before = await read_all(loaded)
    empty = tmp_path / "empty.ndjson"
    empty.write_bytes(b"")
    assert_clean_failure(run("import-data", str(empty), "--database-url", loaded), "no recognised table")
    wrong = tmp_path / "wrong.json"
    wrong.write_bytes(orjson.dumps({"metadata": {}, "data": {}}))
    assert_clean_failure(run("import-data", str(wrong), "--database-url", loaded), "no recognised table")
    unknown = tmp_path / "unknown.ndjson"
    unknown.write_bytes(b'{"table": "not_a_table", "data": {"a": 1}}\n')
    assert_clean_failure(run("import-data", str(unknown), "--database-url", loaded), "unknown.ndjson:1", "not_a_table")
    assert_same(before, await read_all(loaded))


@pytest.mark.parametrize("fmt", ["ndjson", "json"])
async def test_failure_near_the_end_leaves_every_table_as_before(loaded: str, tmp_path: Path, fmt: str) -> None:
    before = await read_all(loaded)
    dump = tmp_path / f"dump.{fmt}"
    assert run("export-data", str(dump), "--database-url", loaded).returncode == 0
    text = dump.read_bytes()
    if fmt == "ndjson":
        lines = text.splitlines()
        lines[-2] = lines[-2][:-10] + b'"broken'  # a malformed line near the end
        bad = b"\n".join(lines) + b"\n"
        needle = f"dump.{fmt}:{len(lines) - 1}"
    else:
        bad = text[: len(text) - 40]  # truncated: the document ends early
        needle = f"dump.{fmt}"
    dump.write_bytes(bad)
    assert_clean_failure(run("import-data", str(dump), "--database-url", loaded), needle)
    assert_same(before, await read_all(loaded))


async def test_wrong_value_is_named_and_nothing_changes(loaded: str, tmp_path: Path) -> None:
    before = await read_all(loaded)
    dump = tmp_path / "bad.ndjson"
    dump.write_bytes(b'{"table": "chat_history", "data": {"chat_id": "x", "user_input": "a", "ai_output": "b", '
                     b'"model": "m", "timestamp": "not a date", "session_id": "s"}}\n')
    line = assert_clean_failure(run("import-data", str(dump), "--database-url", loaded))
    assert "bad.ndjson:1" in line and "chat_history" in line and "timestamp" in line
    assert_same(before, await read_all(loaded))


async def test_new_rows_get_ids_after_explicit_ids(loaded: str, tmp_path: Path) -> None:
    dump = tmp_path / "d.ndjson"
    assert run("export-data", str(dump), "--database-url", loaded).returncode == 0
    assert run("import-data", str(dump), "--database-url", loaded).returncode == 0
    async with connect(loaded) as conn:
        q = conn.capabilities.quote
        await conn.execute(
            f"INSERT INTO {q('link_memory_threads')} ({q('source_memory_id')}, {q('target_memory_id')}, "
            f"{q('relation')}, {q('created_at')}) VALUES ({conn.capabilities.placeholders(4)})",
            "a", "b", "related", conn.capabilities.encoders.get(TABLES["link_memory_threads"].columns[4].type, lambda v: v)(
                __import__("datetime").datetime(2024, 1, 1)))
        rows = await conn.fetch(f"SELECT max({q('id')}), count(*) FROM {q('link_memory_threads')}")
    assert rows[0] == (5, 5)


async def test_ndjson_export_has_memorias_shape(tmp_path: Path, samples: Path) -> None:
    result = run("export-data", "-", "--format", "ndjson", "--database-url",
                 f"sqlite:///{samples / 'memoria-sample.db'}")
    assert result.returncode == 0
    lines = result.stdout.decode().splitlines()
    header = orjson.loads(lines[0])
    assert list(header) == ["metadata"]
    meta = header["metadata"]
    assert list(meta)[:4] == ["exported_at", "format", "dialect", "tables"]
    assert meta["exported_at"].endswith("Z") and meta["format"] == "ndjson" and meta["dialect"] == "sqlite"
    counted: dict[str, int] = {}
    trailer = orjson.loads(lines[-1])  # no "table" key: Memoria's reader skips the line
    assert list(trailer) == ["trailer"] and {t["name"]: t["row_count"] for t in trailer["trailer"]["tables"]} == {
        t["name"]: t["row_count"] for t in meta["tables"]}
    for line in lines[1:-1]:  # Memoria's reader (compat §3.1): one object per line with table + data
        obj = orjson.loads(line)
        assert set(obj) == {"table", "data"} and isinstance(obj["data"], dict)
        assert list(obj["data"]) == list(TABLES[obj["table"]].column_names)  # model column order
        counted[obj["table"]] = counted.get(obj["table"], 0) + 1
    declared = {t["name"]: t["row_count"] for t in meta["tables"]}
    assert [t["name"] for t in meta["tables"]] == list(TABLES)
    assert {k: v for k, v in declared.items() if v} == counted
    assert sum(declared.values()) == 600


@pytest.mark.parametrize("args, needle", [
    (["import-data", "{missing}"], "no such file"),
    (["import-data", "{malformed}"], "malformed JSON"),
    (["import-data", "{malformed}", "--format", "xml"], "invalid choice"),
    (["export-data", "-", "--database-url", "postgresql://u:secret@127.0.0.1:1/none"], "cannot connect"),
    (["export-data", "-", "--database-url", "oracle://u:secret@h/db"], "unsupported database URL scheme"),
    (["export-data", "-", "--database-url", "not a url"], "not a database URL"),
    (["export-data", "-", "--table", "nope", "--database-url", "sqlite:///{db}"], "nope"),
])
def test_bad_input_gives_one_line(tmp_path: Path, args: list[str], needle: str) -> None:
    malformed = tmp_path / "malformed.json"
    malformed.write_bytes(b'{"metadata": {}, "data": {"teams": [{"team_id": }]}}')
    db = tmp_path / "x.db"
    sqlite3_db(db)
    filled = [a.format(missing=tmp_path / "missing.json", malformed=malformed, db=db) for a in args]
    result = run(*filled)
    err = result.stderr.decode()
    assert result.returncode != 0 and "Traceback" not in err and needle in err, err
    assert "secret" not in err
    if "invalid choice" not in needle:
        assert_clean_failure(result, needle)


def sqlite3_db(path: Path) -> None:
    import sqlite3

    sqlite3.connect(path).execute("CREATE TABLE teams (team_id TEXT PRIMARY KEY)").connection.close()


def _plain(value: object) -> object:
    from memoria_stream.model.types import JSON_NULL

    if value is JSON_NULL:
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat()  # type: ignore[union-attr]
    return value
