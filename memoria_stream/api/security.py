"""Who may call the API: the ``X-API-Key`` check, and the refusal of requests from other web pages."""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from memoria_stream.api.responses import error

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


LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
# Sec-Fetch-Site values a browser sends for a request no other site started ("none": typed by the
# user). "same-site" is refused too: another port on localhost is the same site.
OWN_FETCH_SITES = frozenset({"same-origin", "none"})
FOREIGN_HOST = "Forbidden: the Host header does not name this server"
FOREIGN_ORIGIN = "Forbidden: cross-origin requests are not accepted"


class SameOriginMiddleware:
    """Answers 403 to requests another web page could have made through the user's browser.

    * A present ``Origin`` must be this server's own (``null`` is foreign), and ``Sec-Fetch-Site``,
      when sent, must not say another site started the request. A cross-site "simple" POST
      (``text/plain``, no preflight) would otherwise reach the import. No CORS header is ever sent,
      so a preflight is never granted either.
    * Without an API key, ``Host`` must name the address the server listens on (or a loopback name)
      with its port: a DNS-rebound name (``evil.example:PORT`` resolving to 127.0.0.1) is refused,
      so a page cannot read the export. With a key the key itself stops that page (it cannot know
      it), and the server may sit behind any DNS name.

    Starlette's TrustedHostMiddleware does not fit: it ignores the port, cannot parse ``[::1]``
    and answers in plain text instead of our JSON envelope."""

    def __init__(self, app: ASGIApp, *, check_host: bool) -> None:
        self.app = app
        self._check_host = check_host

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        refusal = self._refusal(scope) if scope["type"] == "http" else None
        if refusal:
            await error(refusal, 403)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _refusal(self, scope: Scope) -> str | None:
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
        host = headers.get("host", "")
        if self._check_host and not names_this_server(host, scope.get("server")):
            return FOREIGN_HOST
        origin = headers.get("origin")
        if origin is not None and not same_origin(origin, host):
            return FOREIGN_ORIGIN
        site = headers.get("sec-fetch-site")
        if site is not None and site.strip().lower() not in OWN_FETCH_SITES:
            return FOREIGN_ORIGIN
        return None


def names_this_server(host: str, server: tuple[str, int | None] | None) -> bool:
    """Whether a ``Host`` header names a loopback name or the address we listen on, with our port."""
    name, port = split_host(host)
    if name is None:
        return False
    listening_on, our_port = server if server else (None, None)
    allowed = LOOPBACK_NAMES | ({listening_on.lower().strip("[]")} if listening_on else set())
    return name in allowed and (our_port is None or (port or 80) == our_port)


def same_origin(origin: str, host: str) -> bool:
    """Browsers send ``Origin`` as scheme://host[:port] with the same host[:port] as ``Host`` for
    a page served from this very server; anything else (including ``null``) came from elsewhere."""
    netloc = urlsplit(origin.strip()).netloc.lower() if "://" in origin else ""
    return bool(netloc) and netloc == host.strip().lower()


def split_host(host: str) -> tuple[str | None, int | None]:
    """``name[:port]`` (``[v6]:port`` too) as (lower-case name without brackets, port); None when malformed."""
    try:
        parts = urlsplit(f"//{host.strip()}")
        return parts.hostname or None, parts.port
    except ValueError:  # a port that is not a number, an unclosed bracket
        return None, None
