"""Drivers are looked up by backend name and imported when first used."""

from __future__ import annotations

import contextlib
import importlib
from typing import AsyncIterator

from memoria_stream.errors import ConfigurationError
from memoria_stream.drivers.urls import DatabaseURL, parse_url
from memoria_stream.drivers.base import Capabilities, Connection, LiveColumn

_MODULES = {"sqlite": ("sqlite", "aiosqlite"), "postgresql": ("postgres", "asyncpg"), "mysql": ("mysql", "aiomysql")}

__all__ = ["Capabilities", "Connection", "LiveColumn", "connect", "open_connection"]


async def open_connection(url: str | DatabaseURL, *, read_only: bool = False) -> Connection:
    """Open a connection; the caller closes it with ``aclose()``. Prefer ``connect``.

    ``read_only`` opens it for looking only: nothing is created (a missing SQLite file is an
    error, not a new file) and the session refuses writes."""
    parsed = parse_url(url) if isinstance(url, str) else url
    module_name, package = _MODULES[parsed.backend]
    try:
        module = importlib.import_module(f"{__name__}.{module_name}")
    except ImportError as exc:
        if exc.name != package:
            raise
        raise ConfigurationError(f"{parsed.backend} needs the {package} package: pip install {package}") from exc
    conn: Connection = await module.connect(parsed, read_only=read_only)
    return conn


@contextlib.asynccontextmanager
async def connect(url: str | DatabaseURL, *, read_only: bool = False) -> AsyncIterator[Connection]:
    """``async with connect(url) as conn``: one connection, closed (shielded) on the way out."""
    conn = await open_connection(url, read_only=read_only)
    try:
        yield conn
    finally:
        await conn.aclose()
