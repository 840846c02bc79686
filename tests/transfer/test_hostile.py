"""Hostile input on every backend: injection through names, oversized lines, deep nesting, gzip
bombs, invalid UTF-8, NUL in text, values that do not fit. Each is one line naming where the bad
input is, never a traceback, and the target is left exactly as it was."""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import orjson
import pytest

from memoria_stream.drivers import connect

from support.dataset import build_dataset, load_dataset
from support.helpers import assert_same, read_all
from support.processes import assert_clean_failure, run

TEAM = {"team_id": "t-new", "name": "n", "slug": "s-new", "created_at": "2024-01-01T00:00:00"}


@pytest.fixture
async def loaded(db_url: str) -> str:
    async with connect(db_url) as conn:
        await load_dataset(conn, build_dataset(4))
    return db_url


def ndjson(path: Path, *rows: Any, raw: bytes = b"") -> Path:
    lines = [orjson.dumps({"metadata": {"format": "ndjson"}})]
    lines += [orjson.dumps({"table": table, "data": data}) for table, data in rows]
    path.write_bytes(b"\n".join(lines) + b"\n" + raw)
    return path


async def rejected(url: str, path: Path, *needles: str, extra: tuple[str, ...] = ()) -> str:
    """Import ``path``: a one-line error holding every needle, and the target unchanged."""
    before = await read_all(url)
    line = assert_clean_failure(run("import-data", str(path), "--database-url", url, *extra), *needles)
    assert_same(before, await read_all(url))
    return line


async def teams_intact(url: str) -> None:
    async with connect(url) as conn:
        assert "teams" in await conn.table_names()
        rows = await conn.fetch(f"SELECT count(*) FROM {conn.capabilities.quote('teams')}")
    assert rows[0][0] == 4


async def test_injected_table_name_is_rejected_by_name(loaded: str, tmp_path: Path) -> None:
    path = ndjson(tmp_path / "inject.ndjson", ("teams", TEAM), ("chat_history; DROP TABLE teams", {"a": 1}))
    await rejected(loaded, path, "inject.ndjson:3", "invalid table name", "chat_history; DROP TABLE teams")
    json_path = tmp_path / "inject.json"
    json_path.write_bytes(orjson.dumps({"metadata": {}, "data": {"teams; DROP TABLE teams": [{"a": 1}]}}))
    await rejected(loaded, json_path, "inject.json", "teams; DROP TABLE teams")
    await teams_intact(loaded)


async def test_injected_column_name_is_rejected_by_name(loaded: str, tmp_path: Path) -> None:
    evil = 'x"; DROP TABLE teams; --'
    path = ndjson(tmp_path / "col.ndjson", ("teams", {**TEAM, evil: 1}))
    await rejected(loaded, path, "col.ndjson:2", "table teams", "invalid column name", evil)
    backtick = ndjson(tmp_path / "tick.ndjson", ("teams", {**TEAM, "x`; DROP TABLE teams; --": 1}))
    await rejected(loaded, backtick, "tick.ndjson:2", "invalid column name")
    await teams_intact(loaded)


async def test_line_over_the_limit(loaded: str, tmp_path: Path) -> None:
    path = ndjson(tmp_path / "long.ndjson", ("teams", TEAM), ("teams", {**TEAM, "description": "x" * 5000}))
    await rejected(loaded, path, "long.ndjson:3", "table teams", "longer than 1000 bytes",
                   extra=("--max-line-bytes", "1000"))


@pytest.mark.parametrize("fmt", ["ndjson", "json"])
async def test_nesting_deeper_than_the_parser_allows(loaded: str, tmp_path: Path, fmt: str) -> None:
    deep: Any = "bottom"
    for _ in range(100_000):
        deep = [deep]
    path = tmp_path / f"deep.{fmt}"
    value = b"[" * 100_000 + b'"bottom"' + b"]" * 100_000
    if fmt == "ndjson":
        path.write_bytes(b'{"table": "agents", "data": {"agent_id": "a", "name": "n", "metadata": ' + value + b"}}\n")
        await rejected(loaded, path, "deep.ndjson:1", "table agents", "column metadata", "depth")
    else:
        path.write_bytes(b'{"metadata": {}, "data": {"agents": [{"agent_id": "a", "metadata": ' + value + b"}]}}")
        await rejected(loaded, path, "deep.json", "table agents", "row 1", "column metadata", "nesting deeper")


async def test_gzip_bomb(loaded: str, tmp_path: Path) -> None:
    path = tmp_path / "bomb.ndjson.gz"
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    with path.open("wb") as out:  # 256 MiB of zeros in a ~250 KB file
        out.write(packer.compress(b'{"table": "teams", "data": {"team_id": "'))
        for _ in range(256):
            out.write(packer.compress(bytes(1 << 20)))
        out.write(packer.flush())
    await rejected(loaded, path, "bomb.ndjson.gz", "gzip bomb")


@pytest.mark.parametrize("fmt", ["ndjson", "json"])
async def test_invalid_utf8(loaded: str, tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"bad.{fmt}"
    if fmt == "ndjson":
        ndjson(path, ("teams", TEAM), raw=b'{"table": "teams", "data": {"team_id": "t\xff\xfe", "name": "n"}}\n')
        await rejected(loaded, path, "bad.ndjson:3", "table teams", "column team_id", "invalid UTF-8")
    else:
        path.write_bytes(b'{"metadata": {}, "data": {"teams": [{"team_id": "t\xff\xfe", "name": "n"}]}}')
        await rejected(loaded, path, "bad.json", "UTF8")


async def test_nul_in_text(loaded: str, backend: str, tmp_path: Path) -> None:
    row = {**TEAM, "description": "before\x00after"}
    path = ndjson(tmp_path / "nul.ndjson", ("teams", TEAM | {"team_id": "t-ok", "slug": "ok"}), ("teams", row))
    extra = ("--table", "teams", "--no-truncate")
    if backend == "postgres":  # PostgreSQL cannot store U+0000 in text: named, nothing changed
        await rejected(loaded, path, "nul.ndjson:3", "table teams", "column description", "NUL", extra=extra)
        return
    result = run("import-data", str(path), "--database-url", loaded, *extra)
    assert result.returncode == 0, result.stderr.decode()
    stored = {r["team_id"]: r["description"] for r in (await read_all(loaded, ["teams"]))["teams"]}
    assert stored["t-new"] == "before\x00after"


async def test_text_too_long_for_its_column(loaded: str, backend: str, tmp_path: Path) -> None:
    path = ndjson(tmp_path / "wide.ndjson", ("teams", {**TEAM, "name": "é" * 256}))
    extra = ("--table", "teams", "--no-truncate")
    if backend == "sqlite":  # SQLite does not enforce VARCHAR(n): the value is stored whole
        assert run("import-data", str(path), "--database-url", loaded, *extra).returncode == 0
        return
    await rejected(loaded, path, "wide.ndjson:2", "table teams", "column name", "256 characters", "255",
                   extra=extra)


@pytest.mark.parametrize("value, everywhere", [(2**31, False), (-(2**31) - 1, False), (2**63, True),
                                               ("99999999999999999999999", True)])
async def test_integer_out_of_range(loaded: str, backend: str, tmp_path: Path, value: Any, everywhere: bool) -> None:
    chat = {"chat_id": "c-new", "user_input": "u", "ai_output": "a", "model": "m",
            "timestamp": "2024-01-01T00:00:00", "session_id": "s", "tokens_used": value}
    path = ndjson(tmp_path / "big.ndjson", ("chat_history", chat))
    extra = ("--table", "chat_history", "--no-truncate")
    if backend == "sqlite" and not everywhere:  # SQLite integers are 64-bit
        assert run("import-data", str(path), "--database-url", loaded, *extra).returncode == 0
        return
    await rejected(loaded, path, "big.ndjson:2", "table chat_history", "column tokens_used", "out of range",
                   extra=extra)
