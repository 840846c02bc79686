"""Fixtures shared by every test folder: one database per backend for each test
(helpers live in ``tests/support/databases.py``)."""

from __future__ import annotations
from pathlib import Path
from typing import AsyncIterator
import pytest

from support.databases import BACKENDS, SAMPLES, make_database


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def db_url(backend: str, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh empty database on each backend."""
    async for url in make_database(backend, tmp_path, "target"):
        yield url


@pytest.fixture
async def second_db_url(backend: str, tmp_path: Path) -> AsyncIterator[str]:
    """Another fresh empty database on the same backend."""
    async for url in make_database(backend, tmp_path, "second"):
        yield url


@pytest.fixture
def samples() -> Path:
    assert SAMPLES.exists(), f"the Memoria samples are missing: {SAMPLES}"
    return SAMPLES


@pytest.fixture(autouse=True)
def private_state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """What runs remember between them (``copy --sync``) goes to the test's own folder, never ~."""
    folder = tmp_path / "state"
    monkeypatch.setenv("MEMORIA_STREAM_STATE_DIR", str(folder))
    return folder
