"""What generic code may know about each backend without naming it: one small record per backend.

``DatabaseURL`` (``urls.py``) reads it for file identity and default ports, ``open_connection`` for
the driver module, the backup code for the backup module and file extension.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Backend:
    name: str  # what ``DatabaseURL.backend`` holds
    driver_module: str  # module under ``memoria_stream.drivers`` with ``connect(url)``
    package: str  # the driver library, named in the error when it is not installed
    backup_module: str  # module under ``memoria_stream.drivers`` with ``backup()`` and ``restore()``
    backup_extension: str  # one format per backend: the extension says which restore path a file takes
    default_port: int | None = None  # None: the database is a local file, not a server
    schemes: tuple[str, ...] = ()  # URL schemes that name it (before any ``+driver``)

    @property
    def is_file(self) -> bool:
        return self.default_port is None


BACKENDS: dict[str, Backend] = {b.name: b for b in (
    Backend("sqlite", "sqlite", "aiosqlite", "sqlite_backup", "sqlite3", None, ("sqlite", "sqlite3")),
    Backend("postgresql", "postgres", "asyncpg", "native_backup", "dump", 5432, ("postgresql", "postgres", "pgsql")),
    Backend("mysql", "mysql", "aiomysql", "native_backup", "sql", 3306, ("mysql", "mariadb")),
)}

SCHEMES: dict[str, str] = {scheme: b.name for b in BACKENDS.values() for scheme in b.schemes}


def backend_for_extension(extension: str) -> Backend | None:
    """The backend whose backups end in ``.extension``."""
    return next((b for b in BACKENDS.values() if b.backup_extension == extension), None)
