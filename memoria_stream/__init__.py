"""memoria-stream: async streaming ETL for Memoria's database.

The facade: ``export_data``, ``import_data``, ``copy_database``, ``verify``, the backups and
``backup_guard`` are importable from here; each subpackage holds one part of the design (see README).
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

# Public names imported on first use, so `import memoria_stream` (and the CLI) stays cheap.
_LAZY = {
    "export_data": "memoria_stream.transfer.files",
    "import_data": "memoria_stream.transfer.files",
    "open_export_stream": "memoria_stream.transfer.files",
    "copy_database": "memoria_stream.transfer.copy",
    "verify": "memoria_stream.transfer.verify",
    "RunReport": "memoria_stream.transfer.reports",
    "VerifyReport": "memoria_stream.transfer.verify",
    "create_backup": "memoria_stream.backup.actions",
    "restore_backup": "memoria_stream.backup.actions",
    "list_backups": "memoria_stream.backup.actions",
    "backup_guard": "memoria_stream.backup.guard",
    "backup_guard_sync": "memoria_stream.backup.guard",
    "GuardReport": "memoria_stream.backup.guard",
    "MemoriaStreamError": "memoria_stream.errors",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module_name), name)
