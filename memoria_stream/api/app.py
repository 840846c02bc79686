"""The ASGI application: routes, the API-key middleware and the error envelope."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ..errors import MemoriaStreamError
from .binding import Binder, ImportGate
from .export import export_endpoint
from .imports import import_endpoint
from .openapi import openapi
from .responses import failure, http_exception, unexpected
from .routes import health, refresh
from .security import APIKeyMiddleware
from .settings import Settings


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
        middleware=[Middleware(APIKeyMiddleware, api_key=settings.api_key)],
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
