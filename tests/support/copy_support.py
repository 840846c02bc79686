"""Helpers for the copy, verify and progress tests: seeding, large tables, running the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from memoria_stream.drivers import connect

from support.dataset import load_dataset

ROOT = Path(__file__).resolve().parents[2]
# Runs the CLI with this feature's commands registered, whether or not cli.py lists them yet.
CLI = "import sys\nfrom memoria_stream.cli.main import main\nsys.exit(main(sys.argv[1:]))\n"


def cli_command(*args: str) -> list[str]:
    return [sys.executable, "-c", CLI, *args]


def run_cli(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "160"}
    return subprocess.run(cli_command(*args), capture_output=True, text=True, cwd=ROOT, env=env, timeout=300, **kwargs)


def access_events(count: int, *, first_id: int = 1000) -> list[dict[str, Any]]:
    """``count`` rows for ``memory_access_events`` (no FK needed: workspace_id stays NULL)."""
    start = datetime(2024, 5, 1, 12, 0, 0, 250000)
    return [dict(id=first_id + i, memory_id=f"ltm-{i % 97}", namespace="default", team_id=f"team-{i % 7}",
                 accessed_at=start + timedelta(seconds=i), access_type="retrieval",
                 source=None if i % 3 else "api", metadata_json={"n": i, "tags": ["a", "b"]} if i % 2 else None,
                 workspace_id=None) for i in range(count)]


async def seed(url: str, data: dict[str, list[dict[str, Any]]]) -> None:
    async with connect(url) as conn:
        await load_dataset(conn, data)


async def row_count(url: str, table: str) -> int:
    async with connect(url) as conn:
        q = conn.capabilities.quote
        return int((await conn.fetch(f"SELECT count(*) FROM {q(table)}"))[0][0])
