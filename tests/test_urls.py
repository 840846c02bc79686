"""URL parsing, resolution order and masking."""

from __future__ import annotations

import pytest

from memoria_stream.errors import ConfigurationError
from memoria_stream.urls import mask_url, parse_url, resolve_url


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
