"""Database URLs: parsing, the resolution order, and masking of credentials."""

from __future__ import annotations


import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping
from urllib.parse import parse_qsl, unquote, urlsplit

from memoria_stream.drivers.backends import BACKENDS, SCHEMES, Backend
from memoria_stream.errors import ConfigurationError

DEFAULT_URL = "sqlite:///memoria.db"
ENV_VARIABLES = ("MEMORIA_DATABASE_URL", "DATABASE_URL")

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
    def spec(self) -> Backend:
        """What generic code may know about this URL's backend (``backends.py``)."""
        return BACKENDS[self.backend]

    @property
    def is_file(self) -> bool:
        """Whether the database is a local file (or in memory) rather than on a server."""
        return self.spec.is_file

    @property
    def is_memory(self) -> bool:
        return self.is_file and self.database in (None, "", ":memory:")

    @property
    def file_path(self) -> Path | None:
        """The database file, for a file database that is not in memory."""
        return Path(str(self.database)) if self.is_file and not self.is_memory else None

    @property
    def file_missing(self) -> bool:
        """Whether this names a database file that does not exist (yet)."""
        return self.file_path is not None and not self.file_path.exists()

    def empty_stand_in(self) -> "DatabaseURL":
        """An in-memory database of the same backend: what a file that does not exist yet holds."""
        return replace(self, raw=f"{self.backend}://", database=None)

    @property
    def name(self) -> str | None:
        """The database's own name: the file's stem, or the server's database name."""
        if self.file_path is not None:
            return self.file_path.stem
        return None if self.is_file else self.database

    def identity(self) -> str:
        """Which database this reaches: backend, host, port and database name, or for a file the
        resolved absolute path (the same file reached from another folder is the same database).
        The user is left out: another login to the same database is still the same database."""
        if self.is_memory:
            parts = [self.backend, ":memory:"]
        elif self.file_path is not None:
            parts = [self.backend, str(self.file_path.resolve())]
        else:
            host = self.host or self.query.get("host") or "localhost"
            port = self.port or self.spec.default_port or 0
            parts = [self.backend, host.lower(), str(port), str(self.database)]
        return "\n".join(parts)

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
    backend = SCHEMES.get(scheme.lower().split("+", 1)[0])
    if backend is None:
        raise ConfigurationError(
            f"unsupported database URL scheme {scheme!r} in {mask_url(raw)} (use sqlite, postgresql or mysql)"
        )
    if BACKENDS[backend].is_file:
        return _parse_sqlite(raw, rest)
    return _parse_server(raw, backend)


def _parse_sqlite(raw: str, rest: str) -> DatabaseURL:
    path, _, query = rest.partition("?")
    if path.startswith("/"):
        path = path[1:]  # sqlite:///rel.db -> rel.db ; sqlite:////abs.db -> /abs.db
    elif path:
        raise ConfigurationError(f"malformed SQLite URL {mask_url(raw)!r}: use sqlite:///relative.db or sqlite:////absolute.db")
    return DatabaseURL(raw=raw, backend="sqlite", database=unquote(path) or None, query=dict(parse_qsl(query)))


def _parse_server(raw: str, backend: str) -> DatabaseURL:
    scheme, _, rest = raw.partition("://")
    userinfo, hostpart = _split_userinfo(rest)
    try:
        # Only the part after the userinfo goes to urlsplit: a password with an unencoded ``/``, ``?``
        # or ``#`` would otherwise end the authority early (and its tail be taken for a port).
        parts = urlsplit(f"{scheme}://{hostpart}")
        port = parts.port
    except ValueError:
        raise ConfigurationError(f"malformed database URL {mask_url(raw)}: bad host or port") from None
    database = unquote(parts.path.lstrip("/")) or None
    if not parts.hostname and not parts.query:
        raise ConfigurationError(f"malformed database URL {mask_url(raw)}: no host")
    username, has_password, password = (userinfo or "").partition(":")
    return DatabaseURL(
        raw=raw,
        backend=backend,
        host=parts.hostname,
        port=port,
        username=unquote(username) if username else None,
        password=unquote(password) if has_password else None,
        database=database,
        query=dict(parse_qsl(parts.query)),
    )


def _split_userinfo(rest: str) -> tuple[str | None, str]:
    """``user:password`` and what follows it, split at the LAST ``@``: a password may hold ``@``,
    ``/``, ``?`` or ``#`` unencoded, a host never holds ``@``. A user name cannot hold ``/?#``
    unencoded, so text before the ``@`` whose user part does is a path or query, not userinfo."""
    userinfo, at, hostpart = rest.rpartition("@")
    if not at or any(stop in userinfo.partition(":")[0] for stop in "/?#"):
        return None, rest
    return userinfo, hostpart


# Query parameters that carry a secret (libpq's ``password``, MySQL's ``passwd``/``pwd``, ...).
_SECRET_PARAMETER = re.compile(r"(?i)([?&;](?:password|passwd|pwd|sslpassword)=)[^&;#]*")


def mask_url(raw: str) -> str:
    """The URL with every password replaced by ``***``; never fails, whatever the input.

    Masks the userinfo's password (up to the last ``@``, so unencoded ``/?#@`` in it are covered)
    and ``password=`` query parameters; text too malformed to tell is masked rather than shown."""
    scheme, sep, rest = raw.partition("://")
    if not sep:  # not even ``scheme://``: hide anything that might be ``user:secret@``
        head, at, tail = raw.rpartition("@")
        masked = f"{head.partition(':')[0]}:***@{tail}" if at and ":" in head else raw
        return _SECRET_PARAMETER.sub(r"\1***", masked)
    userinfo, hostpart = _split_userinfo(rest)
    if userinfo is not None and ":" in userinfo:
        rest = f"{userinfo.partition(':')[0]}:***@{hostpart}"
    return _SECRET_PARAMETER.sub(r"\1***", f"{scheme}://{rest}")


def resolve_url(explicit: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """``--database-url``, then ``MEMORIA_DATABASE_URL``, then ``DATABASE_URL``, then the SQLite default."""
    if explicit:
        return explicit
    env = os.environ if environ is None else environ
    for name in ENV_VARIABLES:
        if env.get(name):
            return env[name]
    return DEFAULT_URL
