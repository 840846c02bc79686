"""``POST /admin/migrations/import``: every request shape of Memoria's endpoint, flags and limits."""

from __future__ import annotations

import gzip
from pathlib import Path

import httpx
import orjson
import pytest

from memoria_stream.api import Settings

from support.api_server import chat_rows_ndjson, chunks_of, load, running
from support.helpers import assert_same, read_all
from support.samples import expected_from_sample_db

IMPORT = "/admin/migrations/import"


def _counts(answer: httpx.Response) -> dict[str, int]:
    return {t["name"]: t["rows"] for t in answer.json()["tables"]}


async def test_memoria_file_uploaded_as_multipart(db_url: str, samples: Path) -> None:
    with running(Settings(db_url)) as base:
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            with (samples / "memoria-sample.json").open("rb") as upload:
                answer = await client.post(IMPORT, files={"file": ("memoria-backup.json", upload)},
                                           data={"format": "json"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] == "ok" and body["format"] == "json" and body["total_rows"] == 600
    assert body["metadata"]["dialect"] == "sqlite"  # the file's own metadata
    assert_same(expected_from_sample_db(samples / "memoria-sample.db"), await read_all(db_url))


async def test_memoria_ndjson_as_raw_body(tmp_path: Path, samples: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    expected = expected_from_sample_db(samples / "memoria-sample.db")
    raw = (samples / "memoria-sample.ndjson").read_bytes()
    with running(Settings(url)) as base:
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            declared = await client.post(f"{IMPORT}?format=ndjson", content=raw,
                                         headers={"Content-Type": "application/x-ndjson"})
            assert declared.status_code == 200 and declared.json()["total_rows"] == 600
            assert_same(expected, await read_all(url))
            # Streamed (chunked, no Content-Length), gzip, no format: sniffed.
            sniffed = await client.post(IMPORT, content=chunks_of(gzip.compress(raw), 4096),
                                        headers={"Content-Type": "application/octet-stream"})
            assert sniffed.status_code == 200 and sniffed.json()["format"] == "ndjson"
            # NDJSON under a .json-less name with no format (Memoria answered 400 "Extra data").
            unnamed = await client.post(IMPORT, files={"file": ("backup.txt", raw)})
            assert unnamed.status_code == 200 and unnamed.json()["format"] == "ndjson"
    assert_same(expected, await read_all(url))


async def test_json_body_shapes(tmp_path: Path, samples: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    expected = expected_from_sample_db(samples / "memoria-sample.db")
    document = orjson.loads((samples / "memoria-sample.json").read_bytes())
    ndjson_text = (samples / "memoria-sample.ndjson").read_text()
    shapes = [
        {"format": "json", "truncate": True, "data": document},
        {"format": "ndjson", "data": ndjson_text},
        {"data": (samples / "memoria-sample.json").read_text()},
        document,  # the export document itself as the body (Memoria wiped everything here)
        {"data": document["data"]},  # a bare {table: [rows]} mapping
    ]
    with running(Settings(url)) as base:
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            for shape in shapes:
                answer = await client.post(IMPORT, json=shape)
                assert answer.status_code == 200, (list(shape), answer.text)
                assert answer.json()["total_rows"] == 600
                assert all(t["truncated"] for t in answer.json()["tables"])
                assert_same(expected, await read_all(url))


async def test_truncate_false_appends_and_flags_are_strict(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    first, second = chat_rows_ndjson(5), chat_rows_ndjson(3, start=100)
    with running(Settings(url)) as base:
        async with httpx.AsyncClient(base_url=base) as client:
            async def rows() -> list[str]:
                return [r["chat_id"] for r in (await read_all(url))["chat_history"]]

            assert (await client.post(IMPORT, content=first)).status_code == 200
            json_append = await client.post(IMPORT, json={"truncate": "false", "data": second.decode()})
            assert json_append.status_code == 200 and json_append.json()["tables"][0]["truncated"] is False
            assert len(await rows()) == 8
            await client.post(IMPORT, content=first)
            form_append = await client.post(IMPORT, files={"file": ("x.ndjson", second)}, data={"truncate": "false"})
            assert form_append.status_code == 200 and len(await rows()) == 8
            await client.post(IMPORT, content=first)
            query_append = await client.post(f"{IMPORT}?truncate=no", content=second)
            assert query_append.status_code == 200 and len(await rows()) == 8
            replace = await client.post(IMPORT, json={"truncate": "true", "data": second.decode()})
            assert replace.status_code == 200 and len(await rows()) == 3
            before = await read_all(url)
            for bad in ({"truncate": "maybe", "data": second.decode()}, {"truncate": 2, "data": second.decode()}):
                answer = await client.post(IMPORT, json=bad)
                assert answer.status_code == 400 and answer.json()["message"].startswith("truncate must be true or false")
            assert (await client.post(f"{IMPORT}?truncate=off!", content=second)).status_code == 400
            assert await read_all(url) == before


async def test_requests_without_a_dataset_are_refused_and_change_nothing(tmp_path: Path, samples: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    await load(url, samples / "memoria-sample.ndjson")
    before = await read_all(url)
    with running(Settings(url)) as base:
        async with httpx.AsyncClient(base_url=base) as client:
            answers = [
                await client.post(IMPORT, json={"format": "json"}),
                await client.post(IMPORT, json={"format": "json", "truncate": True}),
                await client.post(IMPORT, json={}),
                await client.post(IMPORT, json={"data": None}),
                await client.post(IMPORT, json={"data": ""}),
                await client.post(IMPORT, files={"file": ("empty.json", b"")}),
                await client.post(IMPORT, files={"other": ("x.json", b"{}")}, data={"format": "json"}),
                await client.post(IMPORT, content=b""),
                await client.post(IMPORT, headers={"Content-Type": "application/json"}),
                await client.post(IMPORT, content=b"{}", headers={"Content-Type": "application/x-ndjson"}),
                await client.post(IMPORT, content=b'{"metadata": {}, "data": {"chat', headers={"Content-Type": "text/plain"}),
                await client.post(IMPORT, json={"data": [1, 2]}),
                await client.post(IMPORT, json={"format": "ndjson", "data": {"metadata": {}, "data": {}}}),
                await client.post(IMPORT, json={"format": "xml", "data": "x"}),
                await client.post(IMPORT, json={"tables": [1], "data": "x"}),
            ]
    for answer in answers:
        assert answer.status_code == 400, answer.text
        body = answer.json()
        assert body["status"] == "error" and "\n" not in body["message"] and body["message"]
    assert answers[0].json()["message"].startswith("No dataset provided")
    assert await read_all(url) == before


async def test_upload_limits_answer_413(tmp_path: Path, samples: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    await load(url, chat_rows_ndjson(2))
    before = await read_all(url)
    raw = (samples / "memoria-sample.ndjson").read_bytes()
    with running(Settings(url, max_upload_bytes=100_000, max_json_bytes=50_000)) as base:
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            declared = await client.post(IMPORT, content=raw)
            multipart = await client.post(IMPORT, files={"file": ("big.ndjson", raw)})
            json_body = await client.post(IMPORT, json={"data": raw[:80_000].decode("utf-8", "ignore")})
            try:  # chunked: no Content-Length, so the limit is found while reading
                streamed = (await client.post(IMPORT, content=chunks_of(raw, 16_384))).status_code
            except httpx.TransportError:
                streamed = 413  # the server may close the connection while the client is still sending
            small = await client.post(IMPORT, content=chat_rows_ndjson(3))
    assert [declared.status_code, multipart.status_code, json_body.status_code, streamed] == [413] * 4
    assert "limit of 100000 bytes" in declared.json()["message"]
    assert "limit of 50000 bytes" in json_body.json()["message"]
    assert small.status_code == 200
    assert len((await read_all(url))["chat_history"]) == 3 and before["chat_history"]


async def test_database_failures_never_show_sql_or_values(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    rows = chat_rows_ndjson(3)
    with running(Settings(url)) as base:
        async with httpx.AsyncClient(base_url=base) as client:
            await client.post(IMPORT, content=rows)
            duplicate = await client.post(f"{IMPORT}?truncate=false", content=rows)
    assert duplicate.status_code == 422
    assert duplicate.json() == {"status": "error", "message": "import refused: the data violates the database's "
                                "constraints (table chat_history); nothing was changed"}
    with running(Settings("postgresql://postgres:pw@127.0.0.1:1/nowhere")) as base:
        down = httpx.post(f"{base}{IMPORT}", content=rows)
    assert down.status_code == 503
    assert down.json()["message"] == "import failed: database error; see the server log"
    for answer in (duplicate, down):
        for leak in ("INSERT", "VALUES", "chat-00000000", "pw", "SELECT"):
            assert leak not in answer.text


@pytest.mark.parametrize("fmt", ["json", "ndjson"])
async def test_table_filter_imports_only_those_tables(tmp_path: Path, samples: Path, fmt: str) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    with running(Settings(url)) as base:
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            path = samples / f"memoria-sample.{fmt}"
            answer = await client.post(f"{IMPORT}?table=agents&table=teams", files={"file": (path.name, path.read_bytes())})
            form = await client.post(IMPORT, files={"file": (path.name, path.read_bytes())},
                                     data={"table": ["teams"], "truncate": "true"})
    assert answer.status_code == 200 and _counts(answer) == {"agents": 16, "teams": 12}
    assert form.status_code == 200 and _counts(form) == {"teams": 12}
    assert {name for name, rows in (await read_all(url)).items() if rows} == {"agents", "teams"}
