"""Settings refresh (work in flight stays on the old database) and one import at a time."""

from __future__ import annotations

import json
from pathlib import Path
from typing import AsyncIterator

import anyio
import httpx
import orjson
import pytest

from memoria_stream.api import Settings, load_settings

from support.api_server import cli_import, chat_rows_ndjson, load, running
from support.databases import make_database
from support.helpers import assert_same, read_all
from support.samples import expected_from_sample_db

EXPORT, IMPORT, REFRESH = "/admin/migrations/export", "/admin/migrations/import", "/admin/settings/refresh"


@pytest.fixture
async def postgres_url(tmp_path: Path) -> AsyncIterator[str]:
    async for url in make_database("postgres", tmp_path, "b"):
        yield url


async def test_refresh_swaps_new_requests_while_a_long_export_finishes_on_the_old(
    tmp_path: Path, samples: Path, postgres_url: str,
) -> None:
    a = f"sqlite:///{tmp_path / 'a.db'}"
    b = postgres_url.replace("postgres@", "postgres:secret@")  # trust auth; shows the masking
    await load(postgres_url, chat_rows_ndjson(7, start=500))
    config = tmp_path / "memoria.json"
    config.write_text(json.dumps({"database_url": a}))
    saved = tmp_path / "long-export.ndjson"
    with running(load_settings(config_file=config)) as base:
        async with httpx.AsyncClient(base_url=base, timeout=120) as client:
            with (samples / "memoria-sample.json").open("rb") as upload:
                assert (await client.post(IMPORT, files={"file": upload})).status_code == 200
            big = await client.post(f"{IMPORT}?truncate=false", content=chat_rows_ndjson(40_000, text_bytes=400))
            assert big.status_code == 200 and big.json()["total_rows"] == 40_000

            async with client.stream("POST", f"{EXPORT}?format=ndjson") as long_export:
                chunks = long_export.aiter_raw()
                head = await anext(chunks)  # the export is running on A; pause it here
                config.write_text(json.dumps({"database_url": b}))
                swapped = await client.post(REFRESH)
                assert swapped.status_code == 200, swapped.text
                assert swapped.json()["changed"] is True
                assert swapped.json()["old"] == {"database_url": a, "backend": "sqlite", "in_flight": 1}
                assert swapped.json()["new"]["database_url"].endswith(":***@127.0.0.1:5432/" + b.rsplit("/", 1)[1])
                from_b = (await client.post(EXPORT)).json()
                assert from_b["metadata"]["dialect"] == "postgresql"
                assert [r["chat_id"] for r in from_b["data"]["chat_history"]] == [f"chat-{i:08d}" for i in range(500, 507)]
                assert (await client.get("/health")).json()["database"]["backend"] == "postgresql"
                with saved.open("wb") as sink:
                    sink.write(head)
                    async for chunk in chunks:
                        sink.write(chunk)
            again = await client.post(REFRESH)
            assert again.json()["changed"] is False
    metadata = orjson.loads(saved.read_bytes().split(b"\n", 1)[0])["metadata"]
    assert metadata["dialect"] == "sqlite"
    copy = f"sqlite:///{tmp_path / 'copy.db'}"
    assert await cli_import(saved, copy) == 0
    assert_same(await read_all(a), await read_all(copy))
    assert len((await read_all(postgres_url))["chat_history"]) == 7  # B untouched by the old export


async def test_refresh_reads_the_environment_and_refuses_a_dead_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db_url: str,
) -> None:
    first = f"sqlite:///{tmp_path / 'first.db'}"
    monkeypatch.setenv("MEMORIA_DATABASE_URL", first)
    await load(db_url, chat_rows_ndjson(2))
    with running(load_settings()) as base:
        async with httpx.AsyncClient(base_url=base) as client:
            monkeypatch.setenv("MEMORIA_DATABASE_URL", "mysql://root:pw@127.0.0.1:1/gone")
            dead = await client.post(REFRESH)
            assert dead.status_code == 503 and "unchanged" in dead.json()["message"] and "pw" not in dead.text
            monkeypatch.setenv("MEMORIA_DATABASE_URL", "nonsense")
            malformed = await client.post(REFRESH)
            assert malformed.status_code == 503 and malformed.json()["message"].startswith("refresh failed:")
            assert (await client.get("/health")).json()["database"]["url"] == first
            monkeypatch.setenv("MEMORIA_DATABASE_URL", db_url)
            assert (await client.post(REFRESH)).json()["new"]["database_url"].startswith(db_url.split("://")[0])
            exported = (await client.post(EXPORT)).json()
    assert len(exported["data"]["chat_history"]) == 2


async def test_two_concurrent_imports_one_wins_one_gets_409(db_url: str, samples: Path) -> None:
    raw = (samples / "memoria-sample.ndjson").read_bytes()
    half = raw.index(b"\n", len(raw) // 2) + 1
    paused, release = anyio.Event(), anyio.Event()

    async def slow_body() -> AsyncIterator[bytes]:
        yield raw[:half]
        paused.set()
        await release.wait()
        yield raw[half:]

    answers: dict[str, httpx.Response] = {}
    with running(Settings(db_url)) as base:
        async with httpx.AsyncClient(base_url=base, timeout=120) as client:
            async def first() -> None:
                answers["first"] = await client.post(IMPORT, content=slow_body())

            async with anyio.create_task_group() as group:
                group.start_soon(first)
                await paused.wait()
                await anyio.sleep(0.5)  # the server has claimed the database and is loading the first half
                answers["second"] = await client.post(
                    IMPORT, files={"file": ("other.ndjson", chat_rows_ndjson(4, start=900))})
                release.set()
            after = await client.post(f"{IMPORT}?truncate=false", content=chat_rows_ndjson(1, start=990))
    assert answers["first"].status_code == 200 and answers["first"].json()["total_rows"] == 600
    assert answers["second"].status_code == 409
    assert "already running" in answers["second"].json()["message"]
    assert after.status_code == 200  # the database is free again
    expected = expected_from_sample_db(samples / "memoria-sample.db")
    actual = await read_all(db_url)
    assert [r["chat_id"] for r in actual["chat_history"] if r["chat_id"].startswith("chat-")] == ["chat-00000990"]
    actual["chat_history"] = [r for r in actual["chat_history"] if r["chat_id"] != "chat-00000990"]
    assert_same(expected, actual)
