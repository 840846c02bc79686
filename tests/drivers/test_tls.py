"""Connection security: TLS as the URL asks (never quietly plaintext), and no LOAD DATA LOCAL.

The local test servers run without TLS, so a URL that requires TLS must fail to connect there,
with one line saying so, and one that disables it must work."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import aiomysql
import pymysql
import pytest

from memoria_stream.drivers import connect
from memoria_stream.drivers.urls import parse_url
from memoria_stream.errors import DatabaseError

from support.databases import MYSQL_ADMIN_URL, PG_ADMIN_URL


def export(url: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "memoria_stream", "export-data", str(tmp_path / "x.json"),
                           "--quiet", "--database-url", url], capture_output=True, text=True, timeout=120)


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


async def reachable(url: str) -> None:
    try:
        async with connect(url):
            pass
    except DatabaseError as exc:
        pytest.skip(f"server not reachable: {exc}")


@pytest.mark.parametrize("base, query", [
    (MYSQL_ADMIN_URL, "ssl-mode=REQUIRED"), (MYSQL_ADMIN_URL, "ssl=true"), (MYSQL_ADMIN_URL, "sslmode=VERIFY_CA"),
    (PG_ADMIN_URL, "sslmode=require"), (PG_ADMIN_URL, "ssl=true"),
])
async def test_required_tls_is_not_quietly_dropped(base: str, query: str, tmp_path: Path) -> None:
    await reachable(base)
    result = export(f"{base}?{query}", tmp_path)
    assert result.returncode == 5
    assert "SSL" in one_line(result)
    assert not (tmp_path / "x.json").exists()


@pytest.mark.parametrize("base, query", [
    (MYSQL_ADMIN_URL, "ssl-mode=DISABLED"), (MYSQL_ADMIN_URL, "ssl-mode=preferred"), (MYSQL_ADMIN_URL, "ssl=false"),
    (PG_ADMIN_URL, "sslmode=disable"), (PG_ADMIN_URL, "sslmode=prefer"),
])
async def test_tls_disabled_or_preferred_connects_in_plaintext(base: str, query: str, tmp_path: Path) -> None:
    await reachable(base)
    result = export(f"{base}?{query}", tmp_path)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("base, query, parameter", [
    (MYSQL_ADMIN_URL, "ssl-mode=sometimes", "ssl-mode"), (MYSQL_ADMIN_URL, "ssl=maybe", "ssl"),
    (PG_ADMIN_URL, "sslmode=sometimes", "sslmode"),
])
def test_unknown_tls_mode_is_a_configuration_error(base: str, query: str, parameter: str, tmp_path: Path) -> None:
    result = export(f"{base}?{query}", tmp_path)
    assert result.returncode == 4
    assert f"unknown {parameter}" in one_line(result)


def test_unreadable_ca_file_is_a_configuration_error(tmp_path: Path) -> None:
    result = export(f"{MYSQL_ADMIN_URL}?ssl-ca={tmp_path / 'missing.pem'}", tmp_path)
    assert result.returncode == 4
    assert "ssl-ca" in one_line(result)


async def test_mysql_client_refuses_load_data_local(tmp_path: Path) -> None:
    """With local_infile on, the server (or anyone posing as it) could read any file we can read. Our
    connection announces LOCAL_FILES (its own writes use LOAD DATA LOCAL) but never opens a file."""
    await reachable(MYSQL_ADMIN_URL)
    secret = tmp_path / "secret.txt"
    secret.write_text("client-side secret\n")
    steal = f"LOAD DATA LOCAL INFILE '{secret}' INTO TABLE stolen"
    assert await rows_read_by_a_trusting_client(steal) == [("client-side secret",)]  # the attack is real
    async with connect(MYSQL_ADMIN_URL) as conn:
        await conn.execute("CREATE TEMPORARY TABLE stolen (line TEXT)")
        with pytest.raises(DatabaseError, match="local infile"):
            await conn.execute(steal)
        unbuffered = await conn._conn.cursor(aiomysql.SSCursor)  # type: ignore[attr-defined]
        with pytest.raises(pymysql.err.OperationalError, match="local infile"):  # aiomysql's other result path
            await unbuffered.execute(steal)
        await unbuffered.close()
        assert await conn.fetch("SELECT count(*) FROM stolen") == [(0,)]


async def rows_read_by_a_trusting_client(steal: str) -> list[tuple[str]]:
    """What ``steal`` stores through a plain aiomysql connection with local_infile on."""

    url = parse_url(MYSQL_ADMIN_URL)
    conn = await aiomysql.connect(host=url.host, port=url.port or 3306, user=url.username or "root",
                                  password=url.password or "", db=url.database, local_infile=True)
    try:
        async with conn.cursor() as cur:
            await cur.execute("CREATE TEMPORARY TABLE stolen (line TEXT)")
            await cur.execute(steal)
            await cur.execute("SELECT line FROM stolen")
            return [tuple(r) for r in await cur.fetchall()]
    finally:
        conn.close()


async def test_our_own_load_sends_our_bytes_whatever_file_the_server_names(tmp_path: Path) -> None:
    """An armed write answers with its own stream, not the named file; the arming serves one request."""
    await reachable(MYSQL_ADMIN_URL)
    secret = tmp_path / "secret.txt"
    secret.write_text("client-side secret\n")
    async with connect(MYSQL_ADMIN_URL) as conn:
        raw = conn._conn  # type: ignore[attr-defined]
        await conn.execute("CREATE TEMPORARY TABLE stolen (line TEXT)")
        assert await raw.load_local(f"LOAD DATA LOCAL INFILE '{secret}' INTO TABLE stolen", [b"ours\n"]) == (1, 0)
        with pytest.raises(Exception):  # fails before the server asks for the file: the bytes stay unsent
            await raw.load_local(f"LOAD DATA LOCAL INFILE '{secret}' INTO TABLE no_such_table", [b"again\n"])
        with pytest.raises(DatabaseError, match="local infile"):  # and are not served to the next request
            await conn.execute(f"LOAD DATA LOCAL INFILE '{secret}' INTO TABLE stolen")
        assert await conn.fetch("SELECT line FROM stolen") == [("ours",)]
