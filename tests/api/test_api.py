"""The admin API over a real uvicorn: security, health, OpenAPI and the streamed export."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import orjson
import pytest

from memoria_stream.api import Settings, load_settings
from memoria_stream.cli.serve import check_exposure
from memoria_stream.cli.main import main
from memoria_stream.errors import ConfigurationError

from support.api_server import cli_import, KEY, chat_rows_ndjson, load, peak_rss_kib, running, serve_process
from support.helpers import assert_same, read_all

EXPORT = "/admin/migrations/export"


async def test_every_route_but_health_needs_the_key(tmp_path: Path, samples: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    await load(url, samples / "memoria-sample.ndjson")
    with running(Settings(url, api_key=KEY)) as base:
        async with httpx.AsyncClient(base_url=base) as client:
            for headers in ({}, {"X-API-Key": "wrong"}, {"X-API-Key": KEY + "x"}, {"X-API-Key": ""}):
                for method, path in (("POST", EXPORT), ("POST", "/admin/migrations/import"),
                                     ("POST", "/admin/settings/refresh"), ("GET", "/openapi.json")):
                    answer = await client.request(method, path, headers=headers)
                    assert answer.status_code == 401, (method, path, headers)
                    assert answer.json() == {"status": "error", "message": "Unauthorized"}
            assert (await client.get("/health")).status_code == 200
            answer = await client.post(EXPORT, headers={"X-API-Key": KEY})
            assert answer.status_code == 200
            assert sum(len(rows) for rows in answer.json()["data"].values()) == 600
            spec = (await client.get("/openapi.json", headers={"X-API-Key": KEY})).json()
            assert set(spec["paths"]) >= {EXPORT, "/admin/migrations/import", "/admin/settings/refresh", "/health"}


async def test_health_masks_the_password_and_reports_a_dead_database(tmp_path: Path) -> None:
    settings = Settings("postgresql://postgres:hunter2@127.0.0.1:5432/test")
    with running(settings) as base:
        body = httpx.get(f"{base}/health").json()
    assert body == {"status": "ok", "database": {"url": "postgresql://postgres:***@127.0.0.1:5432/test",
                                                 "backend": "postgresql", "reachable": True}}
    with running(Settings("mysql://root:pw@127.0.0.1:1/test")) as base:
        answer = httpx.get(f"{base}/health")
    assert answer.status_code == 503 and answer.json()["database"]["reachable"] is False
    assert "pw" not in answer.text


@pytest.mark.parametrize("fmt", ["json", "ndjson"])
async def test_streamed_export_imports_back_to_equal_rows(
    db_url: str, second_db_url: str, samples: Path, tmp_path: Path, fmt: str,
) -> None:
    await load(db_url, samples / "memoria-sample.json")
    out = tmp_path / f"export.{fmt}"
    with running(Settings(db_url, api_key=KEY)) as base:
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            async with client.stream("POST", EXPORT, json={"format": fmt}, headers={"X-API-Key": KEY}) as answer:
                assert answer.status_code == 200
                assert answer.headers["transfer-encoding"] == "chunked"
                assert answer.headers["content-type"].startswith(
                    "application/json" if fmt == "json" else "application/x-ndjson")
                assert answer.headers["content-disposition"] == f"attachment; filename=memoria-export.{fmt}"
                with out.open("wb") as sink:
                    async for chunk in answer.aiter_bytes():
                        sink.write(chunk)
    first = out.read_bytes().split(b"\n", 1)[0] if fmt == "ndjson" else out.read_bytes()
    assert orjson.loads(first)["metadata"]["exported_at"] == answer.headers["x-memoria-exported-at"]
    assert answer.headers["x-memoria-exported-at"].endswith("Z")
    assert await cli_import(out, second_db_url) == 0
    assert_same(await read_all(db_url), await read_all(second_db_url))


async def test_export_options_from_body_or_query(tmp_path: Path, samples: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    await load(url, samples / "memoria-sample.ndjson")
    with running(Settings(url)) as base:
        async with httpx.AsyncClient(base_url=base) as client:
            by_body = await client.post(EXPORT, json={"tables": ["teams", "agents"]})
            by_query = await client.post(f"{EXPORT}?format=NDJSON&table=agents&table=teams")
            unknown = await client.post(EXPORT, json={"tables": ["agents", "no_such", "nor_this"]})
            bad_format = await client.post(f"{EXPORT}?format=csv")
            bad_tables = await client.post(EXPORT, json={"tables": {"a": 1}})
            get = await client.get(EXPORT)
    assert list(by_body.json()["data"]) == ["agents", "teams"]
    lines = [orjson.loads(line) for line in by_query.content.splitlines()]
    assert by_query.headers["content-disposition"].endswith("memoria-export.ndjson")
    assert {line["table"] for line in lines[1:-1]} == {"agents", "teams"} and len(lines) == 1 + 16 + 12 + 1
    assert [t["name"] for t in lines[-1]["trailer"]["tables"]] == ["agents", "teams"]  # the trailer, last
    assert unknown.status_code == 400 and unknown.json() == {"status": "error", "message": "unknown table: no_such, nor_this"}
    assert bad_format.status_code == 400 and "json or ndjson" in bad_format.json()["message"]
    assert bad_tables.status_code == 400
    assert bad_tables.json()["message"] == "'tables' must be a sequence of strings"
    assert get.status_code == 405


@pytest.mark.slow
async def test_large_export_starts_sending_before_it_finishes_reading(tmp_path: Path) -> None:
    """100k rows (~75 MB of NDJSON): the first bytes come long before the last, and the server's
    peak memory is flat: what it holds once a quarter has been sent is all it ever holds."""
    url = f"sqlite:///{tmp_path / 'big.db'}"
    await load(url, chat_rows_ndjson(100_000, text_bytes=400))
    with serve_process("--database-url", url) as (base, process):
        async with httpx.AsyncClient(base_url=base, timeout=120) as client:
            await client.post(EXPORT, json={"tables": ["agents"]})  # warm up imports and codecs
            baseline = peak_rss_kib(process.pid)
            started = time.perf_counter()
            size, first_byte, at_quarter = 0, 0.0, 0
            async with client.stream("POST", EXPORT, json={"format": "ndjson"}) as answer:
                assert answer.status_code == 200
                async for chunk in answer.aiter_raw():
                    first_byte = first_byte or time.perf_counter() - started
                    size += len(chunk)
                    if not at_quarter and size > 18 * 1024 * 1024:
                        at_quarter = peak_rss_kib(process.pid)
            total = time.perf_counter() - started
            final = peak_rss_kib(process.pid)
    assert size > 70 * 1024 * 1024
    assert 0 < first_byte < total / 5, f"first byte after {first_byte:.2f} s of {total:.2f} s"
    assert (final - at_quarter) / 1024 < 10, f"peak memory kept growing: {(final - at_quarter) >> 10} MiB"
    assert (final - baseline) / 1024 < size / 1024 / 1024 * 0.7, f"grew {(final - baseline) >> 10} MiB"


def test_serve_refuses_a_public_host_without_a_key(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigurationError, match="--allow-unauthenticated"):
        check_exposure("0.0.0.0", api_key=None, allow_unauthenticated=False)
    check_exposure("0.0.0.0", api_key=None, allow_unauthenticated=True)
    check_exposure("127.0.0.1", api_key=None, allow_unauthenticated=False)
    check_exposure("::1", api_key=None, allow_unauthenticated=False)
    assert capsys.readouterr().err.count("unauthenticated") == 3
    check_exposure("0.0.0.0", api_key="k", allow_unauthenticated=False)
    assert capsys.readouterr().err == ""
    assert main(["serve", "--host", "10.1.2.3", "--database-url", "sqlite://"]) == ConfigurationError.exit_code


def test_settings_come_from_flag_file_then_environment(tmp_path: Path) -> None:
    toml = tmp_path / "memoria.toml"
    toml.write_text('api_key = "abc"\nmax_upload_bytes = 1000\n[database]\nconnection_string = "sqlite:///f.db"\n')
    env = {"MEMORIA_DATABASE_URL": "sqlite:///env.db", "MEMORIA_MAX_JSON_BYTES": "77"}
    settings = load_settings(config_file=toml, environ=env)
    assert (settings.database_url, settings.api_key, settings.max_upload_bytes, settings.max_json_bytes) == (
        "sqlite:///f.db", "abc", 1000, 77)
    assert load_settings(database_url="sqlite:///flag.db", config_file=toml, environ=env).database_url == "sqlite:///flag.db"
    assert load_settings(environ=env).database_url == "sqlite:///env.db"
    assert load_settings(environ={}).database_url == "sqlite:///memoria.db"
    (tmp_path / "bad.json").write_text('{"database_url": "nope"}')
    with pytest.raises(ConfigurationError):
        load_settings(config_file=tmp_path / "bad.json", environ={})
