"""Database URLs: parsing, the resolution order, and masking of credentials."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Mapping
from urllib.parse import parse_qsl, unquote, urlsplit

from .errors import ConfigurationError

DEFAULT_URL = "sqlite:///memoria.db"
ENV_VARIABLES = ("MEMORIA_DATABASE_URL", "DATABASE_URL")

_SCHEMES = {
    "sqlite": "sqlite",
    "sqlite3": "sqlite",
    "postgresql": "postgresql",
    "postgres": "postgresql",
    "pgsql": "postgresql",
    "mysql": "mysql",
    "mariadb": "mysql",
}


@dataclass(frozen=True)
class DatabaseURL:
    """A parsed database URL. ``backend`` is one of ``sqlite``, ``postgresql``, ``mysql``."""

    raw: str
    backend: str
    host: str | None = None
    port: int | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    database: str | None = None  # for SQLite: the file path, or None for an in-memory database
    query: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_memory(self) -> bool:
        return self.backend == "sqlite" and self.database in (None, "", ":memory:")

    def masked(self) -> str:
        """The URL as the user wrote it, with any password replaced by ``***``."""
        return mask_url(self.raw)

    def __str__(self) -> str:
        return self.masked()


def parse_url(raw: str) -> DatabaseURL:
    """Parse a SQLAlchemy-style URL (``+driver`` suffixes and ``postgres://`` accepted)."""
    if not isinstance(raw, str) or "://" not in raw:
        raise ConfigurationError(f"not a database URL: {mask_url(str(raw))!r} (expected e.g. sqlite:///memoria.db)")
    scheme, _, rest = raw.partition("://")
    backend = _SCHEMES.get(scheme.lower().split("+", 1)[0])
    if backend is None:
        raise ConfigurationError(
            f"unsupported database URL scheme {scheme!r} in {mask_url(raw)} (use sqlite, postgresql or mysql)"
        )
    if backend == "sqlite":
        return _parse_sqlite(raw, rest)
    return _parse_server(raw, backend)


def _parse_sqlite(raw: str, rest: str) -> DatabaseURL:
    path, _, query = rest.partition("?")
    if path.startswith("/"):
        path = path[1:]  # sqlite:///rel.db -> rel.db ; sqlite:////abs.db -> /abs.db
    elif path:
        raise ConfigurationError(f"malformed SQLite URL {raw!r}: use sqlite:///relative.db or sqlite:////absolute.db")
    return DatabaseURL(raw=raw, backend="sqlite", database=unquote(path) or None, query=dict(parse_qsl(query)))


def _parse_server(raw: str, backend: str) -> DatabaseURL:
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError as exc:
        raise ConfigurationError(f"malformed database URL {mask_url(raw)}: {exc}") from None
    database = unquote(parts.path.lstrip("/")) or None
    if not parts.hostname and not parts.query:
        raise ConfigurationError(f"malformed database URL {mask_url(raw)}: no host")
    return DatabaseURL(
        raw=raw,
        backend=backend,
        host=parts.hostname,
        port=port,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        database=database,
        query=dict(parse_qsl(parts.query)),
    )


def mask_url(raw: str) -> str:
    """Replace the password of a URL with ``***``; never fails, whatever the input."""
    scheme, sep, rest = raw.partition("://")
    if not sep:
        return raw
    netloc_end = len(rest)
    for stop in "/?#":
        index = rest.find(stop)
        if index != -1:
            netloc_end = min(netloc_end, index)
    netloc, tail = rest[:netloc_end], rest[netloc_end:]
    if "@" not in netloc:
        return raw
    userinfo, _, hostinfo = netloc.rpartition("@")
    if ":" not in userinfo:
        return raw
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user}:***@{hostinfo}{tail}"


def resolve_url(explicit: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """``--database-url``, then ``MEMORIA_DATABASE_URL``, then ``DATABASE_URL``, then the SQLite default."""
    if explicit:
        return explicit
    env = os.environ if environ is None else environ
    for name in ENV_VARIABLES:
        if env.get(name):
            return env[name]
    return DEFAULT_URL
