"""Security issue 12: other web pages, stalled uploads, refresh targets, passwords in output."""

from __future__ import annotations

import json
import socket
import sqlite3
import time
from pathlib import Path

import httpx
import orjson
import pytest

from memoria_stream.api import Settings, load_settings
from memoria_stream.errors import ConfigurationError

from support.api_server import KEY, chat_rows_ndjson, load, running, serve_process
from support.helpers import read_all

EXPORT, IMPORT, REFRESH = "/admin/migrations/export", "/admin/migrations/import", "/admin/settings/refresh"
EVIL = "https://evil.example"


def _refused(answer: httpx.Response) -> bool:
    """403 with our one-line JSON envelope (and nothing else: no exported rows)."""
    return (answer.status_code == 403 and "\n" not in answer.text
            and answer.json()["status"] == "error" and set(answer.json()) == {"status", "message"})


async def test_keyless_api_refuses_requests_from_other_web_pages(tmp_path: Path, samples: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    await load(url, samples / "memoria-sample.ndjson")
    before = await read_all(url)
    attack = chat_rows_ndjson(1, start=666)
    with running(Settings(url)) as base:
        port = base.rsplit(":", 1)[1]
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            # A cross-site "simple" POST (no preflight) and its variants: the import must not run.
            for headers in ({"Origin": EVIL}, {"Origin": "null"}, {"Origin": f"http://127.0.0.1:{int(port) + 1}"},
                            {"Origin": f"http://localhost:{port}"}, {"Sec-Fetch-Site": "cross-site"},
                            {"Sec-Fetch-Site": "same-site"}):
                answer = await client.post(IMPORT, content=attack, headers={"Content-Type": "text/plain", **headers})
                assert _refused(answer), (headers, answer.status_code, answer.text)
            # DNS rebinding: evil.example resolves to 127.0.0.1, the page reads the export.
            for host in (f"evil.example:{port}", "evil.example", f"127.0.0.1.evil.example:{port}",
                         f"127.0.0.1:{int(port) + 1}", "[::1", ""):
                for method, path in (("POST", EXPORT), ("GET", "/health"), ("GET", "/openapi.json")):
                    answer = await client.request(method, path, headers={"Host": host})
                    assert _refused(answer), (host, path, answer.status_code)
            # The server's own names and origin still work.
            for headers in ({"Host": f"localhost:{port}"}, {"Host": f"[::1]:{port}"}, {"Host": f"LOCALHOST:{port}"},
                            {"Origin": base}, {"Sec-Fetch-Site": "same-origin"}, {"Sec-Fetch-Site": "none"}):
                answer = await client.post(EXPORT, headers=headers)
                assert answer.status_code == 200, (headers, answer.text)
                assert "access-control-allow-origin" not in answer.headers
    assert await read_all(url) == before


async def test_with_a_key_cors_stays_closed_and_any_host_name_is_served(tmp_path: Path, samples: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    await load(url, samples / "memoria-sample.ndjson")
    before = await read_all(url)
    with running(Settings(url, api_key=KEY)) as base:
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            preflight = await client.options(IMPORT, headers={
                "Origin": EVIL, "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "x-api-key, content-type"})
            assert preflight.status_code in (401, 403, 405)
            assert not [name for name in preflight.headers if name.lower().startswith("access-control-")]
            # Even a page that somehow holds the key is refused by its Origin.
            stolen = await client.post(IMPORT, content=chat_rows_ndjson(1, start=666),
                                       headers={"X-API-Key": KEY, "Origin": EVIL, "Content-Type": "text/plain"})
            assert _refused(stolen), stolen.text
            # Behind a DNS name (a proxy, a public interface) the key is the check, not the Host.
            named = await client.post(EXPORT, headers={"X-API-Key": KEY, "Host": "memoria.internal:8080"})
            assert named.status_code == 200
            assert not [name for name in named.headers if name.lower().startswith("access-control-")]
    assert await read_all(url) == before


def _post_headers(port: int, declared: int) -> bytes:
    return (f"POST {IMPORT} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/x-ndjson\r\n"
            f"Content-Length: {declared}\r\n\r\n").encode()


def _answer_of(sock: socket.socket) -> tuple[int, bytes]:
    """Status and body of the one response on ``sock`` (the server closes it afterwards)."""
    data = b""
    while b"\r\n\r\n" not in data or not data.endswith(b"}"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def _sqlite_can_write(path: Path) -> bool:
    """A separate connection (the app's) writes without waiting: no one holds the write lock."""
    try:
        with sqlite3.connect(path, timeout=0) as other:
            other.execute("CREATE TABLE IF NOT EXISTS app_scratch (n INTEGER)")
            other.execute("INSERT INTO app_scratch VALUES (1)")
        return True
    except sqlite3.OperationalError:
        return False


async def test_a_stalled_upload_times_out_and_releases_the_database(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    url = f"sqlite:///{path}"
    await load(url, chat_rows_ndjson(3))
    stalled_early = chat_rows_ndjson(1, start=100)  # headers and one line, then silence
    stalled_late = chat_rows_ndjson(400, start=200)  # past the first batch: the import has begun
    with running(Settings(url, body_idle_timeout=1.0)) as base:
        port = int(base.rsplit(":", 1)[1])
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            with socket.create_connection(("127.0.0.1", port), timeout=15) as early:
                early.sendall(_post_headers(port, 100_000_000) + stalled_early)
                time.sleep(0.3)
                # Still receiving: nothing is claimed yet, the app and other imports go on.
                assert _sqlite_can_write(path)
                other = await client.post(f"{IMPORT}?truncate=false", content=chat_rows_ndjson(1, start=900))
                assert other.status_code == 200, other.text
                status, body = _answer_of(early)
            assert status == 408 and body.count(b"\n") == 0 and b"stalled" in body
            with socket.create_connection(("127.0.0.1", port), timeout=15) as late:
                late.sendall(_post_headers(port, 100_000_000) + stalled_late)
                started = time.monotonic()
                status, body = _answer_of(late)
                waited = time.monotonic() - started
                # Answered while the socket is still open: the gate and the write lock are free.
                assert status == 408 and orjson.loads(body)["status"] == "error", body
                assert 0.9 < waited < 10
                assert _sqlite_can_write(path)
                again = await client.post(f"{IMPORT}?truncate=false", content=chat_rows_ndjson(1, start=901))
                assert again.status_code == 200, again.text
    ids = sorted(row["chat_id"] for row in (await read_all(url))["chat_history"])
    assert ids == [f"chat-{i:08d}" for i in (0, 1, 2, 900, 901)]  # neither stalled upload left a row


def test_body_idle_timeout_comes_from_flag_file_then_environment(tmp_path: Path) -> None:
    config = tmp_path / "memoria.json"
    config.write_text(json.dumps({"body_idle_timeout": 7}))
    env = {"MEMORIA_BODY_IDLE_TIMEOUT": "2.5"}
    assert load_settings(environ={}).body_idle_timeout == 60.0
    assert load_settings(environ=env).body_idle_timeout == 2.5
    assert load_settings(environ=env, config_file=config).body_idle_timeout == 7.0
    assert load_settings(environ=env, config_file=config, body_idle_timeout=1.5).body_idle_timeout == 1.5
    assert load_settings(environ=env, config_file=config).reload(env).body_idle_timeout == 7.0
    for wrong in ("0", "-1", "soon", "nan"):
        with pytest.raises(ConfigurationError):
            load_settings(environ={"MEMORIA_BODY_IDLE_TIMEOUT": wrong})


async def test_refresh_needs_a_memoria_database_and_creates_nothing(
    tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = f"sqlite:///{tmp_path / 'first.db'}"
    await load(first, chat_rows_ndjson(2))
    foreign = tmp_path / "other-app.db"
    with sqlite3.connect(foreign) as other:
        other.execute("CREATE TABLE invoices (id INTEGER)")
    missing = tmp_path / "missing.db"
    monkeypatch.setenv("MEMORIA_DATABASE_URL", first)
    with running(load_settings()) as base:
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            for target in ("sqlite:////etc/passwd", f"sqlite:///{missing}", f"sqlite:///{foreign}", db_url):
                monkeypatch.setenv("MEMORIA_DATABASE_URL", target)
                refused = await client.post(REFRESH)
                assert refused.status_code == 503, (target, refused.text)
                assert "unchanged" in refused.json()["message"] and "\n" not in refused.text
                assert (await client.get("/health")).json()["database"]["url"] == first
            assert not missing.exists()
            await load(db_url, chat_rows_ndjson(1, start=50))  # now it holds Memoria's tables
            swapped = await client.post(REFRESH)
            assert swapped.status_code == 200 and swapped.json()["changed"] is True, swapped.text
            exported = (await client.post(EXPORT)).json()
    assert [row["chat_id"] for row in exported["data"]["chat_history"]] == ["chat-00000050"]
    assert [row["chat_id"] for row in (await read_all(first))["chat_history"]] == ["chat-00000000", "chat-00000001"]


def test_no_response_or_log_line_shows_the_password(tmp_path: Path) -> None:
    secret_urls = ["postgresql://memoria:secret@127.0.0.1:1/memoria", "mysql://memoria:secret@127.0.0.1:1/other"]
    config = tmp_path / "memoria.json"
    config.write_text(json.dumps({"database_url": secret_urls[0]}))
    answers: list[httpx.Response] = []
    with serve_process("--config", str(config), "--log-level", "info") as (base, process):
        with httpx.Client(base_url=base, timeout=60) as client:
            answers.append(client.get("/health"))
            answers.append(client.post(EXPORT))
            answers.append(client.post(IMPORT, content=chat_rows_ndjson(1)))
            config.write_text(json.dumps({"database_url": secret_urls[1]}))
            answers.append(client.post(REFRESH))
            answers.append(client.get("/health"))
        process.terminate()
        process.wait(timeout=30)
        assert process.stderr is not None
        stderr = process.stderr.read().decode()
    assert [answer.status_code for answer in answers] == [503, 503, 503, 503, 503]
    assert "memoria:***@127.0.0.1:1" in answers[0].text + answers[3].text
    assert "admin API on" in stderr and "memoria:***@" in stderr  # the banner, masked
    for text in [answer.text for answer in answers] + [stderr]:
        assert "secret" not in text, text
