"""API-key authentication: every route but ``/health`` needs ``X-API-Key`` when a key is set."""

from __future__ import annotations

import hmac

from starlette.types import ASGIApp, Receive, Scope, Send

from .responses import error

HEADER = b"x-api-key"
OPEN_PATHS = frozenset({"/health"})


def key_matches(given: bytes | None, expected: bytes) -> bool:
    """Constant-time comparison, so the answer's timing does not leak how much of a guess was right."""
    return given is not None and hmac.compare_digest(given, expected)


class APIKeyMiddleware:
    """Answers 401 ``{"status": "error", "message": "Unauthorized"}`` unless the key is right.

    With no key configured it lets everything through (``serve`` refuses to listen beyond
    loopback in that case unless told to)."""

    def __init__(self, app: ASGIApp, *, api_key: str | None) -> None:
        self.app = app
        self._expected = api_key.encode("utf-8") if api_key else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._expected is None or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        given = next((value for name, value in scope["headers"] if name == HEADER), None)
        if not key_matches(given, self._expected):
            await error("Unauthorized", 401)(scope, receive, send)
            return
        await self.app(scope, receive, send)
