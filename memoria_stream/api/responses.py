"""The JSON envelope of every answer, and which HTTP status each kind of failure gets.

Error bodies are one line and never carry SQL text or bound parameters: a driver's message can
hold both, so database failures are answered with a generic sentence (naming the table when it is
known) and the full message goes to the server log instead.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from memoria_stream.model.catalog import TABLES
from memoria_stream.errors import ConfigurationError, DatabaseError, InputError, IntegrityFailure, MemoriaStreamError
from memoria_stream.api.binding import ImportInProgress

log = logging.getLogger("memoria_stream.api")
_LEADING_TABLE = re.compile(r"table (\w+)")


class PayloadTooLarge(InputError):
    """Raised when a request body is larger than the configured limit (HTTP 413)."""


class BodyStalled(InputError):
    """Raised when a request body sends nothing for longer than the idle timeout (HTTP 408)."""


def ok(payload: dict[str, Any] | None = None, status_code: int = 200) -> JSONResponse:
    return JSONResponse({"status": "ok", **(payload or {})}, status_code=status_code)


def error(message: str, status_code: int, **extra: Any) -> JSONResponse:
    return JSONResponse({"status": "error", "message": one_line(message), **extra}, status_code=status_code)


def one_line(message: str) -> str:
    text = message.strip()
    return " ".join(text.splitlines()[0].split()) if text else "failed"


def failure(exc: BaseException, *, action: str) -> JSONResponse:
    """The response for an error raised while doing ``action`` (e.g. "import")."""
    table = table_named_in(str(exc)) if isinstance(exc, DatabaseError) else None
    where = f" (table {table})" if table else ""
    if isinstance(exc, PayloadTooLarge):
        return error(str(exc), 413)
    if isinstance(exc, BodyStalled):
        return error(str(exc), 408)
    if isinstance(exc, InputError):
        return error(str(exc), 400)
    if isinstance(exc, ImportInProgress):
        return error(str(exc), 409)
    if isinstance(exc, IntegrityFailure):
        log.warning("%s refused by the database's constraints%s: %s", action, where, exc)
        return error(f"{action} refused: the data violates the database's constraints{where}; "
                     "nothing was changed", 422)
    if isinstance(exc, DatabaseError):
        log.error("%s failed in the database%s: %s", action, where, exc)
        return error(f"{action} failed: database error{where}; see the server log", 503)
    if isinstance(exc, ConfigurationError):
        log.error("%s failed: %s", action, exc)
        return error(f"{action} failed: {exc}", 503)
    log.exception("%s failed: internal error", action, exc_info=exc)
    kind = "internal error" if not isinstance(exc, MemoriaStreamError) else type(exc).__name__
    return error(f"{action} failed: {kind}; see the server log", 500)


def table_named_in(message: str) -> str | None:
    """The one catalogue table a driver's message names (``agents.agent_id``, ``"agents_pkey"``),
    or None when it names none or several: a wrong table would be worse than none."""
    lead = _LEADING_TABLE.match(message)
    if lead and lead.group(1) in TABLES:
        return lead.group(1)
    found = {name for name in TABLES if re.search(rf"(?<![A-Za-z0-9]){name}(?![A-Za-z0-9])", message)}
    return found.pop() if len(found) == 1 else None


async def http_exception(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's own errors (404, 405, bad multipart) in our envelope."""
    assert isinstance(exc, HTTPException)
    return error(str(exc.detail), exc.status_code)


async def unexpected(request: Request, exc: Exception) -> JSONResponse:
    return failure(exc, action=f"{request.method} {request.url.path}")
