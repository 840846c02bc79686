"""The ASGI application: routes, the security and body-timeout middleware, the error envelope."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from memoria_stream.errors import MemoriaStreamError
from memoria_stream.api.binding import Binder, ImportGate
from memoria_stream.api.export import export_endpoint
from memoria_stream.api.imports import import_endpoint
from memoria_stream.api.inputs import BodyIdleTimeout
from memoria_stream.api.openapi import openapi
from memoria_stream.api.responses import failure, http_exception, unexpected
from memoria_stream.api.routes import health, refresh
from memoria_stream.api.security import APIKeyMiddleware, SameOriginMiddleware
from memoria_stream.api.settings import Settings


def create_app(settings: Settings) -> Starlette:
    """A new app bound to ``settings.database_url``; ``app.state`` holds the binder and the gate."""
    app = Starlette(
        routes=[
            Route("/health", health, methods=["GET"]),
            Route("/openapi.json", openapi, methods=["GET"]),
            Route("/admin/migrations/export", export_endpoint, methods=["POST"]),
            Route("/admin/migrations/import", import_endpoint, methods=["POST"]),
            Route("/admin/settings/refresh", refresh, methods=["POST"]),
        ],
        middleware=[  # outermost first: a foreign page is refused before the key is even looked at
            Middleware(SameOriginMiddleware, check_host=not settings.api_key),
            Middleware(APIKeyMiddleware, api_key=settings.api_key),
            Middleware(BodyIdleTimeout, seconds=settings.body_idle_timeout),
        ],
        exception_handlers={
            MemoriaStreamError: _memoria_error,
            HTTPException: http_exception,
            Exception: unexpected,
        },
    )
    app.state.settings = settings
    app.state.binder = Binder(settings.database_url)
    app.state.gate = ImportGate()
    return app


async def _memoria_error(request: Request, exc: Exception) -> JSONResponse:
    return failure(exc, action=request.url.path.rsplit("/", 1)[-1] or "request")
