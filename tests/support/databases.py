"""Databases for tests: one per backend: every database test runs on SQLite, PostgreSQL and MySQL/MariaDB.

Each test gets a database of its own (a fresh SQLite file, or a PostgreSQL/MariaDB database with a
random name that is dropped afterwards). A server that does not answer skips its tests locally and
fails them when ``CI=true``.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import AsyncIterator

import pytest

from memoria_stream.drivers import connect
from memoria_stream.errors import DatabaseError

PG_ADMIN_URL = os.environ.get("MEMORIA_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
MYSQL_ADMIN_URL = os.environ.get("MEMORIA_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")
BACKENDS = ("sqlite", "postgres", "mysql")
SAMPLES = Path(__file__).resolve().parents[1] / "fixtures"


def _unavailable(backend: str, exc: Exception) -> None:
    message = f"{backend} server not reachable: {exc}"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


async def _server_database(backend: str) -> AsyncIterator[str]:
    admin = PG_ADMIN_URL if backend == "postgres" else MYSQL_ADMIN_URL
    name = f"ms_{uuid.uuid4().hex[:12]}"
    try:
        async with connect(admin) as conn:
            await conn.execute(f"CREATE DATABASE {name}")
    except DatabaseError as exc:
        _unavailable(backend, exc)
    base = admin.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        async with connect(admin) as conn:
            drop = f"DROP DATABASE IF EXISTS {name}" + (" WITH (FORCE)" if backend == "postgres" else "")
            await conn.execute(drop)


async def make_database(backend: str, tmp_path: Path, label: str = "db") -> AsyncIterator[str]:
    """Yield the URL of a fresh, empty database on ``backend``; dropped afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / (label + '.db')}"
        return
    async for url in _server_database(backend):
        yield url
