"""Drivers are looked up by backend name and imported when first used."""

from __future__ import annotations

import contextlib
import importlib
from typing import Any, AsyncIterator

from memoria_stream.errors import ConfigurationError
from memoria_stream.drivers.urls import DatabaseURL, parse_url
from memoria_stream.drivers.base import Capabilities, Connection, LiveColumn

__all__ = ["Capabilities", "Connection", "LiveColumn", "backup_tools", "connect", "open_connection"]


async def open_connection(url: str | DatabaseURL, *, read_only: bool = False,
                          blocking_reads: bool = False) -> Connection:
    """Open a connection; the caller closes it with ``aclose()``. Prefer ``connect``.

    ``read_only`` opens it for looking only: nothing is created (a missing SQLite file is an
    error, not a new file) and the session refuses writes. ``blocking_reads`` says the caller has
    nothing else to run while it reads (a worker process): a driver that reads on a thread of its
    own (SQLite's) then reads on the caller's, without the hop to that thread and back."""
    parsed = parse_url(url) if isinstance(url, str) else url
    module_name, package = parsed.spec.driver_module, parsed.spec.package
    try:
        module = importlib.import_module(f"{__name__}.{module_name}")
    except ImportError as exc:
        if exc.name != package:
            raise
        raise ConfigurationError(f"{parsed.backend} needs the {package} package: pip install {package}") from exc
    conn: Connection = await module.connect(parsed, read_only=read_only, blocking_reads=blocking_reads)
    return conn


def backup_tools(url: DatabaseURL) -> Any:
    """The module with ``backup(url, path)`` and ``restore(url, path)`` for ``url``'s backend,
    imported here so that using one backend never needs the other's code paths."""
    return importlib.import_module(f"{__name__}.{url.spec.backup_module}")


@contextlib.asynccontextmanager
async def connect(url: str | DatabaseURL, *, read_only: bool = False,
                  blocking_reads: bool = False) -> AsyncIterator[Connection]:
    """``async with connect(url) as conn``: one connection, closed (shielded) on the way out."""
    conn = await open_connection(url, read_only=read_only, blocking_reads=blocking_reads)
    try:
        yield conn
    finally:
        await conn.aclose()
