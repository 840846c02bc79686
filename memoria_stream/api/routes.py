"""``GET /health`` and ``POST /admin/settings/refresh``."""

from __future__ import annotations


import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse

from memoria_stream.model.catalog import TABLES
from memoria_stream.drivers import connect
from memoria_stream.errors import DatabaseError, MemoriaStreamError
from memoria_stream.drivers.urls import mask_url, parse_url
from memoria_stream.api.binding import Binding
from memoria_stream.api.responses import error, log, ok

CHECK_SECONDS = 5.0


async def health(request: Request) -> JSONResponse:
    """The bound database (password masked) and whether it answers; 503 when it does not."""
    binding: Binding = request.app.state.binder.current
    database: dict[str, object] = {"url": binding.masked, "backend": parse_url(binding.url).backend}
    if _missing_file(binding.url):
        # Not an error: the first import creates it. Opening it here would create it as a side effect.
        database.update(reachable=True, exists=False)
    else:
        database["reachable"] = await answers(binding.url)
    status = "ok" if database["reachable"] else "unavailable"
    return JSONResponse({"status": status, "database": database}, status_code=200 if status == "ok" else 503)


async def refresh(request: Request) -> JSONResponse:
    """Re-read the configuration and bind new requests to its database; in-flight ones stay put.

    The new database must answer and hold Memoria's tables first: a refresh to a target that is
    down would take the whole API down with it, and one to any readable file (``/etc/passwd``)
    would later be written to; both are refused (503) and the old binding stays."""
    settings = request.app.state.settings.reload()
    binder = request.app.state.binder
    if settings.database_url == binder.current.url:
        current = binder.current.describe()
        return ok({"changed": False, "old": current, "new": current})
    problem = await memoria_problem(settings.database_url)
    if problem:
        return error(f"refresh refused: the new database {mask_url(settings.database_url)} {problem}; "
                     "the binding is unchanged", 503)
    old, new = binder.swap(settings.database_url)
    request.app.state.settings = settings
    log.info("refresh: %s -> %s (%d request(s) finishing on the old one)", old.masked, new.masked, old.in_flight)
    return ok({"changed": True, "old": old.describe(), "new": new.describe()})


async def memoria_problem(url: str) -> str | None:
    """Why ``url`` cannot be bound (it does not answer, or holds none of Memoria's tables), or None.

    It is opened read-only so that looking creates nothing (no new SQLite file)."""
    with anyio.move_on_after(CHECK_SECONDS):
        try:
            async with connect(url, read_only=True) as conn:
                present = set(await conn.table_names()) & set(TABLES)
        except MemoriaStreamError as exc:
            log.warning("refresh: %s cannot be opened: %s", mask_url(url), exc)
            return "does not answer or is not a database"
        return None if present else "holds none of Memoria's tables"
    return "does not answer"


async def answers(url: str) -> bool:
    """Whether a connection opens (read-only: creating nothing) and a query runs within a few seconds."""
    with anyio.move_on_after(CHECK_SECONDS):
        try:
            async with connect(url, read_only=True) as conn:
                await conn.fetch("SELECT 1")
            return True
        except MemoriaStreamError as exc:
            if not isinstance(exc, DatabaseError):
                log.warning("database check failed: %s", exc)
            return False
    return False


def _missing_file(url: str) -> bool:
    return parse_url(url).file_missing
