"""The admin HTTP API (Starlette): streamed export and import, settings refresh, API-key security.

``create_app`` is imported lazily so that the CLI, which imports ``api.commands`` for ``--help``,
does not load Starlette for every command.
"""

from __future__ import annotations

from typing import Any

from memoria_stream.api.settings import Settings, load_settings

__all__ = ["Settings", "create_app", "load_settings"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from memoria_stream.api.app import create_app

        return create_app
    raise AttributeError(name)
