"""Request parameters read once at the edge: formats, table lists, strict flags, size limits."""

from __future__ import annotations

from typing import Any

import anyio
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from memoria_stream.codecs import normalise_format
from memoria_stream.errors import InputError
from memoria_stream.model.values import parse_bool_flag
from memoria_stream.api.responses import BodyStalled, PayloadTooLarge

TABLES_ERROR = "'tables' must be a sequence of strings"


def format_param(*candidates: Any) -> str | None:
    """The first given format among ``candidates`` (body, then query, then form), checked."""
    for value in candidates:
        if value is None or value == "":
            continue
        if not isinstance(value, str):
            raise InputError("format must be 'json' or 'ndjson'")
        return normalise_format(value)
    return None


def tables_param(value: Any) -> list[str] | None:
    """Memoria's rule: a string is one table, a list of strings is a list; empty means all tables."""
    if value is None:
        return None
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(item, str) for item in items):
        raise InputError(TABLES_ERROR)
    names = [item.strip() for item in items if item.strip()]
    return names or None


def truncate_param(value: Any) -> bool:
    """Truncate unless told otherwise; strict, so ``"false"`` is false and ``"maybe"`` is an error."""
    if value is None or value == "":
        return True
    return parse_bool_flag(value.strip() if isinstance(value, str) else value, name="truncate")


def off_unless_asked(value: Any, name: str) -> bool:
    """A flag that is off unless the request sets it (``allow_lossy``, ``dry_run``, ``accept_altered``);
    strict, so ``"maybe"`` is an error naming ``name``."""
    if value is None or value == "":
        return False
    return parse_bool_flag(value.strip() if isinstance(value, str) else value, name=name)


def query_tables(request: Request) -> list[str] | None:
    return tables_param(request.query_params.getlist("table") or None)


def check_declared_size(request: Request, limit: int) -> None:
    """Refuse before reading a byte when ``Content-Length`` already says the body is too large."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_large(limit)


def limited_receive(receive: Receive, limit: int) -> Receive:
    """``receive`` that counts body bytes and raises 413 once they pass ``limit`` (chunked uploads
    have no ``Content-Length`` to check up front)."""
    seen = 0

    async def counted() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise too_large(limit)
        return message

    return counted


async def read_capped(request: Request, limit: int, what: str) -> bytes:
    """The whole body, for the shapes that must be parsed whole (JSON); refused past ``limit``."""
    parts: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(limit, what)
        parts.append(chunk)
    return b"".join(parts)


def too_large(limit: int, what: str = "upload") -> PayloadTooLarge:
    return PayloadTooLarge(f"the {what} is larger than the limit of {limit} bytes")


class BodyIdleTimeout:
    """Refuses (408) a request body that sends nothing for ``seconds``.

    Without it a client that declares a large body and then goes silent keeps its request, and
    whatever that request holds (the import gate, a database write lock), for as long as the socket
    stays open. Only the body is timed: once it is complete, ``receive`` only waits for the client
    to disconnect (while a long export streams out), which may rightly take any time."""

    def __init__(self, app: ASGIApp, *, seconds: float) -> None:
        self.app = app
        self._seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            receive = idle_limited_receive(receive, self._seconds)
        await self.app(scope, receive, send)


def idle_limited_receive(receive: Receive, seconds: float) -> Receive:
    body_complete = False

    async def timed() -> Message:
        nonlocal body_complete
        if body_complete:
            return await receive()
        try:
            with anyio.fail_after(seconds):
                message = await receive()
        except TimeoutError:
            raise BodyStalled(f"the request body stalled: nothing arrived for {seconds:g} s; "
                              "nothing was changed") from None
        body_complete = message["type"] != "http.request" or not message.get("more_body", False)
        return message

    return timed
