"""Progress: bars on a terminal, silence in a file, JSON lines on request, the summary always."""

from __future__ import annotations

import io
import json
import os
import pty
import subprocess
from pathlib import Path

import orjson

from memoria_stream.model.catalog import TABLES
from memoria_stream.cli.progress import Progress

from support.copy_support import ROOT, access_events, cli_command, run_cli, seed
from support.dataset import build_dataset


async def _source(tmp_path: Path) -> str:
    data = build_dataset()
    data["memory_access_events"] += access_events(20_000)
    url = f"sqlite:///{tmp_path / 'source.db'}"
    await seed(url, data)
    return url


def _run_in_pty(*args: str) -> tuple[int, str]:
    """Run the CLI with stdout and stderr on a pseudo-terminal; return (status, what it showed)."""
    primary, secondary = pty.openpty()
    env = {**os.environ, "COLUMNS": "160", "TERM": "xterm-256color"}
    process = subprocess.Popen(cli_command(*args), stdin=subprocess.DEVNULL, stdout=secondary, stderr=secondary,
                               cwd=ROOT, env=env)
    os.close(secondary)
    chunks = []
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # EIO: the child closed its side
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(primary)
    return process.wait(60), b"".join(chunks).decode("utf-8", "replace")


async def test_progress_appears_in_a_pseudo_terminal(tmp_path: Path) -> None:
    source = await _source(tmp_path)
    status, shown = _run_in_pty("copy", source, f"sqlite:///{tmp_path / 'target.db'}")
    assert status == 0, shown
    assert "\x1b[" in shown and "━" in shown  # a live rich display was drawn
    assert "rows/s" in shown and "MB/s" in shown and "memory_access_events" in shown
    assert "20,010/20,010" in shown  # rows done of the source's total
    # One line for the whole job above the tables' bars: every table's rows together.
    assert "total" in shown and "20,160/20,160" in shown and "100%" in shown
    assert shown.index("total") < shown.index("agents")
    assert "Copied 20160 rows across 14 tables" in shown


async def test_no_progress_when_stderr_is_a_file_but_the_summary(tmp_path: Path) -> None:
    source = await _source(tmp_path)
    with open(tmp_path / "stderr.txt", "w") as err:
        status = subprocess.run(cli_command("copy", source, f"sqlite:///{tmp_path / 'target.db'}"),
                                stdout=subprocess.DEVNULL, stderr=err, cwd=ROOT, timeout=120).returncode
    text = (tmp_path / "stderr.txt").read_text()
    assert status == 0
    assert "\x1b[" not in text and "━" not in text and "MB/s" not in text
    lines = text.splitlines()
    assert lines[0].split() == ["table", "rows", "seconds", "rows/s"]
    assert any(line.split()[:2] == ["memory_access_events", "20010"] for line in lines)
    assert "Copied 20160 rows across 14 tables" in lines[-1]


async def test_json_log_format_gives_one_line_per_table_event(tmp_path: Path) -> None:
    source = await _source(tmp_path)
    result = run_cli("copy", source, f"sqlite:///{tmp_path / 'target.db'}", "--log-format", "json")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stderr.splitlines()]
    starts = [e["table"] for e in events if e["event"] == "table_start"]
    done = {e["table"]: e["rows"] for e in events if e["event"] == "table_done"}
    finished = [e for e in events if e["event"] == "table_done"]
    assert all(e["job_rows_total"] == 20160 for e in finished)
    assert max(e["job_rows_done"] for e in finished) == 20160
    assert sorted(starts) == sorted(TABLES) and sorted(done) == sorted(TABLES)
    assert done["memory_access_events"] == 20010 and done["teams"] == 10
    assert events[-1]["event"] == "summary" and events[-1]["total_rows"] == 20160
    assert events[-1]["job_rows_done"] == 20160 and events[-1]["job_rows_total"] == 20160


async def test_quiet_prints_nothing(tmp_path: Path) -> None:
    source = await _source(tmp_path)
    result = run_cli("copy", source, f"sqlite:///{tmp_path / 'target.db'}", "--quiet")
    assert result.returncode == 0 and result.stderr == "" and result.stdout == ""


def test_progress_object_tracks_totals_and_finishes_empty_tables() -> None:
    out = io.StringIO()
    with Progress(stream=out, log_format="json") as progress:
        assert progress.active and not progress.live
        progress.on_counts({"teams": 3, "agents": 0})
        progress.on_batch("teams", 2, 100)
        progress.on_batch("teams", 1, 50)
    events = [orjson.loads(line) for line in out.getvalue().splitlines()]
    assert [(e["event"], e["table"]) for e in events] == [
        ("table_start", "teams"), ("table_done", "teams"), ("table_start", "agents"), ("table_done", "agents")]
    assert events[1]["rows"] == 3 and events[1]["bytes"] == 150 and events[0]["rows_total"] == 3
    assert (events[1]["job_rows_done"], events[1]["job_rows_total"]) == (3, 3)
    silent = io.StringIO()
    with Progress(stream=silent) as quiet_progress:  # not a terminal: nothing while working
        assert not quiet_progress.active
        quiet_progress.on_batch("teams", 5, 10)
    assert silent.getvalue() == ""
