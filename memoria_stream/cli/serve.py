"""``memoria-stream serve``: run the admin API under uvicorn."""

from __future__ import annotations

import argparse
import ipaddress
import sys
from typing import Any

import anyio

from memoria_stream.errors import ConfigurationError
from memoria_stream.drivers.urls import mask_url
from memoria_stream.api.settings import API_KEY_VARIABLE, DEFAULT_BODY_IDLE_TIMEOUT, load_settings

GRACE_SECONDS = 30.0


def add_commands(subparsers: Any) -> None:
    from memoria_stream.cli.options import add_database_url

    serve = subparsers.add_parser(
        "serve", help="run the admin HTTP API (streamed export/import, settings refresh)",
        description="Serve POST /admin/migrations/export, /admin/migrations/import and /admin/settings/refresh. "
                    f"Set {API_KEY_VARIABLE} to require an X-API-Key header.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port to listen on (default: 8080)")
    add_database_url(serve)
    serve.add_argument("--config", metavar="FILE", default=None,
                       help="JSON or TOML file with database_url (re-read by /admin/settings/refresh), "
                            "api_key, max_upload_bytes, max_json_bytes, body_idle_timeout")
    serve.add_argument("--allow-unauthenticated", action="store_true",
                       help=f"listen beyond loopback even though {API_KEY_VARIABLE} is not set")
    serve.add_argument("--body-idle-timeout", metavar="SECONDS", type=float, default=None,
                       help="refuse (408) a request body that sends nothing for this long, releasing "
                            f"the import it holds (default: {DEFAULT_BODY_IDLE_TIMEOUT:g})")
    serve.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"),
                       help="uvicorn's log level (default: info)")
    serve.set_defaults(handler=run_serve)


async def run_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from memoria_stream.api.app import create_app

    settings = load_settings(database_url=args.database_url, config_file=args.config,
                             body_idle_timeout=args.body_idle_timeout)
    check_exposure(args.host, api_key=settings.api_key, allow_unauthenticated=args.allow_unauthenticated)
    config = uvicorn.Config(create_app(settings), host=args.host, port=args.port, log_level=args.log_level,
                            lifespan="off", server_header=False)
    print(f"memoria-stream: admin API on http://{_display(args.host)}:{args.port} "
          f"bound to {mask_url(settings.database_url)}", file=sys.stderr)
    await _serve(uvicorn.Server(config))
    return 0


async def _serve(server: Any) -> None:
    """Run uvicorn; when the CLI cancels us (SIGINT/SIGTERM) still shut down gracefully: stop
    accepting, let requests in flight finish for up to ``GRACE_SECONDS``, then close."""
    try:
        await server.serve()
    except anyio.get_cancelled_exc_class():
        if server.started:
            with anyio.CancelScope(shield=True), anyio.move_on_after(GRACE_SECONDS):
                await server.shutdown()
        raise


def check_exposure(host: str, *, api_key: str | None, allow_unauthenticated: bool) -> None:
    """Without a key, listen on loopback only unless told otherwise; say so either way."""
    if api_key:
        return
    if not is_loopback(host) and not allow_unauthenticated:
        raise ConfigurationError(
            f"refusing to serve the admin API on {host} without {API_KEY_VARIABLE}: anyone who can reach "
            "it could replace the database; set the key, or pass --allow-unauthenticated")
    print(f"memoria-stream: warning: {API_KEY_VARIABLE} is not set; the admin API is unauthenticated"
          + ("" if is_loopback(host) else f" and listening on {host}"), file=sys.stderr)


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _display(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
