"""memoria-stream: async streaming ETL for Memoria's database."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

# Public names imported on first use, so `import memoria_stream` (and the CLI) stays cheap.
_LAZY = {
    "backup_guard": "memoria_stream.backup.guard",
    "backup_guard_sync": "memoria_stream.backup.guard",
    "GuardReport": "memoria_stream.backup.guard",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module_name), name)
