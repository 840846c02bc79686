"""URL parsing, resolution order and masking."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from memoria_stream.errors import ConfigurationError
from memoria_stream.drivers.urls import mask_url, parse_url, resolve_url


@pytest.mark.parametrize("raw, backend, database", [
    ("sqlite:///relative.db", "sqlite", "relative.db"),
    ("sqlite:////abs/path.db", "sqlite", "/abs/path.db"),
    ("sqlite://", "sqlite", None),
    ("postgresql://u@h/db", "postgresql", "db"),
    ("postgres://u@h/db", "postgresql", "db"),
    ("postgresql+asyncpg://u@h:5433/db", "postgresql", "db"),
    ("mysql://u@h/db", "mysql", "db"),
    ("mysql+pymysql://u@h/db", "mysql", "db"),
    ("mariadb://u@h/db", "mysql", "db"),
])
def test_schemes(raw: str, backend: str, database: str | None) -> None:
    url = parse_url(raw)
    assert (url.backend, url.database) == (backend, database)


def test_percent_encoded_password() -> None:
    url = parse_url("postgresql://user:p%40ss%3Aw%2Fr%25d@db.example.com:5432/memoria")
    assert url.password == "p@ss:w/r%d" and url.host == "db.example.com" and url.port == 5432
    assert "p%40ss" not in url.masked() and url.masked() == "postgresql://user:***@db.example.com:5432/memoria"


@pytest.mark.parametrize("raw", ["mysql://root:secret@h/db", "postgresql+asyncpg://a:s3cr%40t@h/db?x=1"])
def test_masking_hides_passwords(raw: str) -> None:
    masked = mask_url(raw)
    assert "secret" not in masked and "s3cr" not in masked and "***" in masked


@pytest.mark.parametrize("raw", ["nonsense", "oracle://h/db", "postgresql://u@h:notaport/db"])
def test_bad_urls(raw: str) -> None:
    with pytest.raises(ConfigurationError):
        parse_url(raw)


def test_resolution_order() -> None:
    env = {"DATABASE_URL": "sqlite:///b.db", "MEMORIA_DATABASE_URL": "sqlite:///a.db"}
    assert resolve_url("sqlite:///flag.db", env) == "sqlite:///flag.db"
    assert resolve_url(None, env) == "sqlite:///a.db"
    assert resolve_url(None, {"DATABASE_URL": "sqlite:///b.db"}) == "sqlite:///b.db"
    assert resolve_url(None, {}) == "sqlite:///memoria.db"


# Each holds the secret "Tr0ub4dor" somewhere a careless parser or mask would print it.
SECRET = "Tr0ub4dor"
SECRET_URLS = [
    f"postgresql://memoria:{SECRET}/3@127.0.0.1:1/memoria",
    f"postgresql://memoria:{SECRET}?3@127.0.0.1:1/memoria",
    f"mysql://memoria:{SECRET}#3@127.0.0.1:1/memoria",
    f"mysql://memoria:{SECRET}@3@127.0.0.1:1/memoria",
    f"postgresql://memoria@127.0.0.1:1/memoria?password={SECRET}",
    f"postgresql://memoria@127.0.0.1:1/memoria?sslmode=disable&password={SECRET}",
    f"mysql://memoria:{SECRET}@127.0.0.1:notaport/memoria",
    f"postgresql:/memoria:{SECRET}@127.0.0.1:1/memoria",
]


@pytest.mark.parametrize("raw", SECRET_URLS)
def test_masking_hides_every_form_of_password(raw: str) -> None:
    masked = mask_url(raw)
    assert SECRET not in masked and "***" in masked, masked


@pytest.mark.parametrize("raw, password", [
    ("postgresql://memoria:Tr0ub4dor/3@db/memoria", "Tr0ub4dor/3"),
    ("postgresql://memoria:Tr0ub?4dor@db:5432/memoria?sslmode=require", "Tr0ub?4dor"),
    ("mysql://memoria:a#b@db/memoria", "a#b"),
    ("mysql://memoria:p@ss@db/memoria", "p@ss"),
])
def test_unencoded_password_characters_parse_as_the_password(raw: str, password: str) -> None:
    url = parse_url(raw)
    assert (url.username, url.password, url.host, url.database) == ("memoria", password, "db", "memoria")
    assert url.masked().startswith(f"{raw.partition('://')[0]}://memoria:***@db")


def test_an_at_sign_in_the_query_is_not_userinfo() -> None:
    url = parse_url("postgresql://db/memoria?application_name=a@b")
    assert (url.username, url.password, url.host, url.query) == (None, None, "db", {"application_name": "a@b"})


@pytest.mark.parametrize("raw", SECRET_URLS)
def test_cli_never_prints_the_password(raw: str, tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "memoria_stream", "export-data", str(tmp_path / "x.json"),
                             "--database-url", raw], capture_output=True, timeout=120)
    output = (result.stdout + result.stderr).decode()
    assert result.returncode in (4, 5), output
    assert SECRET not in output and "Traceback" not in output and len(output.strip().splitlines()) == 1, output
