"""``--commit-per-table --resume``: a run killed with SIGKILL in the middle of its third table is
finished by the rerun without reloading the first two, for ``copy`` and for ``import-data``.

The move: agents and teams (10 rows each), six empty tables, then 150,000 rows of
memory_access_events — the third table in catalogue order that has rows — then five small ones.
The run is started with ``--log-format json`` and killed when stderr reports the third
``table_start`` (emitted after that table's first batch is written, inside its transaction).
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest

from memoria_stream.model.catalog import TABLES
from memoria_stream.drivers import connect
from memoria_stream.transfer.resume_state import STATE_TABLE, table_state
from memoria_stream.transfer.verify import verify

from support.databases import make_database
from support.copy_support import ROOT, access_events, cli_command, run_cli, seed
from support.dataset import build_dataset
from support.helpers import assert_same, read_all

BIG = 150_000
EMPTY = ("workspaces", "workspace_members", "chat_history", "long_term_memory", "short_term_memory",
         "spatial_metadata")
FIRST_EIGHT = ["agents", "teams", *EMPTY]  # recorded before the kill: the two with rows and the empty six
BACKENDS = ("sqlite", "postgres", "mysql")
State = dict[str, tuple[int, str]]


def move_data() -> dict[str, list[dict[str, Any]]]:
    data = build_dataset()
    for name in EMPTY:
        data[name] = []
    data["memory_access_events"] = access_events(BIG)
    return data


@pytest.fixture(scope="module")
def move_source(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """A SQLite source holding the move, and its NDJSON export; made once."""
    folder = tmp_path_factory.mktemp("resume")
    url = f"sqlite:///{folder / 'source.db'}"
    anyio.run(seed, url, move_data())
    dump = folder / "move.ndjson"
    result = run_cli("export-data", str(dump), "--database-url", url, "-q")
    assert result.returncode == 0, result.stderr
    return url, dump


def kill_in_third_table(*args: str) -> list[str]:
    """Run the CLI, SIGKILL it when the third table starts; returns the tables that started."""
    proc = subprocess.Popen(cli_command(*args, "--log-format", "json"), cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    watchdog = threading.Timer(120, proc.kill)  # never hang the suite on a run that prints nothing
    watchdog.start()
    started: list[str] = []
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            event = _json(line)
            if event.get("event") == "table_start":
                started.append(event["table"])
                if len(started) == 3:
                    proc.send_signal(signal.SIGKILL)
                    break
        proc.wait(timeout=60)
    finally:
        watchdog.cancel()
        if proc.stderr:
            proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL, f"the run ended by itself (status {proc.returncode}): {started}"
    return started


def _json(line: bytes) -> dict[str, Any]:
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def events_of(result: subprocess.CompletedProcess[str]) -> dict[str, dict[str, Any]]:
    """The JSON lines of a finished run's stderr, by event name (the last of each)."""
    return {e["event"]: e for e in map(_json, result.stderr.encode().splitlines()) if "event" in e}


async def records(url: str) -> dict[str, tuple[int, str, str]]:
    """The state table: table -> (rows, checksum, finished_at)."""
    async with connect(url) as conn:
        if STATE_TABLE not in await conn.table_names():
            return {}
        rows = await conn.fetch(f"SELECT table_name, row_count, checksum, finished_at FROM {STATE_TABLE}")
    return {name: (int(count), checksum, finished) for name, count, checksum, finished in rows}


async def assert_finished_equal(source: str, target: str) -> None:
    report = await verify(source, target)
    assert report.ok, report.render()
    assert_same(move_data(), await read_all(target))
    async with connect(target) as conn:  # indexes too: the killed run created the big table without them
        for table in TABLES.values():
            assert {ix.name for ix in table.indexes} <= set(await conn.index_names(table.name)), table.name


async def state(url: str) -> State:
    """Every catalogue table's row count and ``verify`` checksum (an absent table: 0 rows, sum 0)."""
    report = await verify(url, url)
    found = {t.name: (t.rows_a or 0, f"{t.checksum_a:064x}") for t in report.tables}
    return {name: found.get(name, (0, f"{0:064x}")) for name in TABLES}


async def assert_killed_mid_third_table(target: str, before: State) -> dict[str, tuple[int, str, str]]:
    """The first eight tables are recorded with the checksum ``verify`` computes; the big table
    and those after it are not recorded and hold what they held before the run."""
    recorded = await records(target)
    assert sorted(recorded) == sorted(FIRST_EIGHT)
    assert recorded["agents"][0] == recorded["teams"][0] == 10
    now = await state(target)
    assert all(recorded[n][:2] == now[n] for n in FIRST_EIGHT)
    assert all(now[n] == before[n] for n in TABLES if n not in FIRST_EIGHT)
    return recorded


def assert_resumed(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stderr
    events = events_of(result)
    skipped = [t["table"] for t in events["tables_skipped"]["tables"]]
    assert skipped == FIRST_EIGHT
    info = events["summary"]["metadata"]["commit_per_table"]
    assert info["skipped"] == FIRST_EIGHT and info["resumed"] is True
    assert info["loaded"] == [n for n in TABLES if n not in FIRST_EIGHT]
    assert "(skipped 8 already finished)" in events["summary"]["headline"]
    loaded = {t["name"]: t["rows"] for t in events["summary"]["tables"]}
    assert loaded["memory_access_events"] == BIG and "agents" not in loaded and "teams" not in loaded


@pytest.mark.slow
@pytest.mark.parametrize("target_backend", BACKENDS)
async def test_copy_resumes_after_sigkill_in_the_third_table(
        target_backend: str, move_source: tuple[str, Path], tmp_path: Path) -> None:
    source, _ = move_source
    async for target in make_database(target_backend, tmp_path, "target"):
        untouched = await state(target)
        started = kill_in_third_table("copy", source, target, "--commit-per-table")
        assert started == ["agents", "teams", "memory_access_events"]
        before = await assert_killed_mid_third_table(target, untouched)

        result = run_cli("copy", source, target, "--commit-per-table", "--resume", "--log-format", "json")
        assert_resumed(result)
        after = await records(target)
        assert all(after[n] == before[n] for n in FIRST_EIGHT)  # same rows, checksum and finished_at
        assert sorted(after) == sorted(TABLES)
        await assert_finished_equal(source, target)


@pytest.mark.slow
@pytest.mark.parametrize("target_backend", BACKENDS)
async def test_import_resumes_after_sigkill_in_the_third_table(
        target_backend: str, move_source: tuple[str, Path], tmp_path: Path) -> None:
    source, dump = move_source
    async for target in make_database(target_backend, tmp_path, "target"):
        await seed(target, build_dataset(3))  # an existing database: replaced table by table
        untouched = await state(target)
        assert untouched["memory_access_events"][0] == 3
        started = kill_in_third_table("import-data", str(dump), "--database-url", target, "--commit-per-table")
        assert started == ["agents", "teams", "memory_access_events"]
        before = await assert_killed_mid_third_table(target, untouched)

        result = run_cli("import-data", str(dump), "--database-url", target, "--commit-per-table", "--resume",
                         "--log-format", "json", "--verify")
        assert_resumed(result)
        assert events_of(result)["verify"]["ok"] is True
        assert {t["name"] for t in events_of(result)["verify"]["tables"]} == set(TABLES)
        after = await records(target)
        assert all(after[n] == before[n] for n in FIRST_EIGHT)
        await assert_finished_equal(source, target)
        assert (await verify(str(dump), target)).ok


@pytest.mark.parametrize("target_backend", BACKENDS)
async def test_a_table_changed_after_its_record_is_redone(target_backend: str, tmp_path: Path) -> None:
    data = build_dataset()
    source = f"sqlite:///{tmp_path / 'source.db'}"
    await seed(source, data)
    async for target in make_database(target_backend, tmp_path, "target"):
        first = run_cli("copy", source, target, "--commit-per-table", "-q")
        assert first.returncode == 0, first.stderr
        recorded = await records(target)
        assert sorted(recorded) == sorted(TABLES)
        async with connect(target) as conn:
            await conn.execute("UPDATE teams SET name = 'changed behind our back' WHERE team_id = 'team-2'")
            assert (await table_state(conn, "teams"))[1] != recorded["teams"][1]

        result = run_cli("copy", source, target, "--commit-per-table", "--resume")
        assert result.returncode == 0, result.stderr
        line = next(x for x in result.stderr.splitlines() if x.startswith("skipped as already finished"))
        assert "teams" not in line.split(":", 1)[1].split(", ")
        assert "Copied 10 rows across 1 tables (skipped 13 already finished)" in result.stderr
        after = await records(target)
        assert after["teams"][2] > recorded["teams"][2] and after["teams"][1] == recorded["teams"][1]
        assert all(after[n] == recorded[n] for n in TABLES if n != "teams")
        assert (await verify(source, target)).ok
        assert_same(data, await read_all(target))

        fresh = run_cli("copy", source, target, "--commit-per-table")  # without --resume: everything again
        assert fresh.returncode == 0, fresh.stderr
        assert "skipped" not in fresh.stderr and "Copied 160 rows across 14 tables" in fresh.stderr
        again = await records(target)
        assert all(again[n][2] > after[n][2] for n in TABLES)


@pytest.mark.parametrize("target_backend", BACKENDS)
async def test_a_malformed_line_near_the_end_changes_nothing(target_backend: str, tmp_path: Path) -> None:
    """Every pass reads the whole file, so a broken line anywhere fails the first table's load."""
    source = f"sqlite:///{tmp_path / 'source.db'}"
    await seed(source, build_dataset(2))
    dump = tmp_path / "dump.ndjson"
    assert run_cli("export-data", str(dump), "--database-url", source, "-q").returncode == 0
    dump.write_bytes(dump.read_bytes() + b'{"table": "cluster_members", "data": {"id": 9, \n')
    async for target in make_database(target_backend, tmp_path, "target"):
        await seed(target, build_dataset(3))
        before = await state(target)
        result = run_cli("import-data", str(dump), "--database-url", target, "--commit-per-table")
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 3 and len(lines) == 1 and "malformed JSON" in lines[0], result.stderr
        assert await state(target) == before
        assert await records(target) == {}


async def test_refusals_are_one_line_and_change_nothing(tmp_path: Path) -> None:
    source = f"sqlite:///{tmp_path / 'source.db'}"
    await seed(source, build_dataset(2))
    target = f"sqlite:///{tmp_path / 'target.db'}"
    dump = tmp_path / "dump.ndjson"
    assert run_cli("export-data", str(dump), "--database-url", source, "-q").returncode == 0
    cases = [
        (["import-data", "-", "--database-url", target, "--commit-per-table", "--resume"], "stdin"),
        (["import-data", str(dump), "--database-url", target, "--resume"], "--resume needs --commit-per-table"),
        (["import-data", str(dump), "--database-url", target, "--commit-per-table", "--no-truncate"], "--no-truncate"),
        (["copy", source, target, "--commit-per-table", "--jobs", "2"], "--jobs"),
        (["copy", source, target, "--resume"], "--resume needs --commit-per-table"),
    ]
    for args, needle in cases:
        result = run_cli(*args, input="")
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 3 and len(lines) == 1 and needle in lines[0], result.stderr
        assert lines[0].startswith("memoria-stream: error: ")
    assert not (tmp_path / "target.db").exists()  # refused before anything was opened


# -- the run key names the very source (security issue 12, item 6) -----------------------------------


def _run_in(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cli_command(*args), capture_output=True, text=True, cwd=folder, timeout=300)


def _renamed_teams(data: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """The same data with every team's name replaced by another of the same length."""
    teams = [{**row, "name": "X" * len(row["name"])} for row in data["teams"]]
    return {**data, "teams": teams}


@pytest.mark.parametrize("target_backend", BACKENDS)
async def test_a_relative_sqlite_source_from_another_folder_is_another_move(
        target_backend: str, tmp_path: Path) -> None:
    data = build_dataset()
    first, second = tmp_path / "a", tmp_path / "b"
    for folder, content in ((first, data), (second, _renamed_teams(data))):
        folder.mkdir()
        await seed(f"sqlite:///{folder / 'memoria.db'}", content)
    async for target in make_database(target_backend, tmp_path, "target"):
        done = _run_in(first, "copy", "sqlite:///memoria.db", target, "--commit-per-table", "-q")
        assert done.returncode == 0, done.stderr
        resumed = _run_in(second, "copy", "sqlite:///memoria.db", target, "--commit-per-table", "--resume")
        assert resumed.returncode == 0, resumed.stderr
        assert "skipped" not in resumed.stderr and "Copied 160 rows across 14 tables" in resumed.stderr
        assert (await verify(f"sqlite:///{second / 'memoria.db'}", target)).ok
        assert_same(_renamed_teams(data), await read_all(target))


def _shout_team_names(dump: bytes) -> bytes:
    """The same NDJSON with the teams named 'plain ascii' renamed in capitals: same size, other content."""
    lines = [line.replace(b'"plain ascii"', b'"PLAIN ASCII"') if b'"table":"teams"' in line else line
             for line in dump.split(b"\n")]
    return b"\n".join(lines)


@pytest.mark.parametrize("target_backend", BACKENDS)
async def test_a_dump_replaced_by_same_size_content_with_the_old_mtime_is_another_move(
        target_backend: str, tmp_path: Path) -> None:
    data = build_dataset()
    source, dump = f"sqlite:///{tmp_path / 'source.db'}", tmp_path / "dump.ndjson"
    await seed(source, data)
    assert run_cli("export-data", str(dump), "--database-url", source, "-q").returncode == 0
    replacement = _shout_team_names(dump.read_bytes())
    assert len(replacement) == dump.stat().st_size and replacement != dump.read_bytes()
    expected = {**data, "teams": [{**row, "name": "PLAIN ASCII"} if row["name"] == "plain ascii" else row
                                  for row in data["teams"]]}
    async for target in make_database(target_backend, tmp_path, "target"):
        done = run_cli("import-data", str(dump), "--database-url", target, "--commit-per-table", "-q")
        assert done.returncode == 0, done.stderr
        old_times = dump.stat()
        dump.write_bytes(replacement)
        os.utime(dump, ns=(old_times.st_atime_ns, old_times.st_mtime_ns))
        # edited on purpose: the trailer would refuse it, which is not what this test is about
        resumed = run_cli("import-data", str(dump), "--database-url", target, "--commit-per-table", "--resume",
                          "--accept-altered")
        assert resumed.returncode == 0, resumed.stderr
        assert "skipped" not in resumed.stderr
        assert_same(expected, await read_all(target))
