"""Backup file names, listing and retention.

A name is ``<kind>_<label>_<UTC timestamp with microseconds>_<random hex>.<ext>``, e.g.
``guard_memoria_20250101T120000.123456Z_3f9a1c.sqlite3``: two backups taken in the same second (or
even the same microsecond) never collide, and names sort by time, so retention is a sort.
"""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from .urls import DatabaseURL

DEFAULT_DIR = Path("backups")
KINDS = ("backup", "guard")
# One format per backend; the extension says which restore path a file takes.
EXTENSIONS = {"sqlite": "sqlite3", "postgresql": "dump", "mysql": "sql"}

_NAME = re.compile(
    r"^(?P<kind>backup|guard)_(?P<label>.+)_(?P<stamp>\d{8}T\d{6}\.\d{6}Z)_(?P<rand>[0-9a-f]{6})"
    r"\.(?P<ext>sqlite3|dump|sql)$"
)


@dataclass(frozen=True)
class BackupFile:
    """One backup file found in a backup directory."""

    path: Path
    kind: str
    label: str
    created: datetime
    backend: str
    size: int


def backup_dir(path: str | os.PathLike[str] | None) -> Path:
    """The directory backups go to: ``path``, or ``backups/`` in the working directory."""
    return Path(path) if path is not None else DEFAULT_DIR


def label_for(url: DatabaseURL) -> str:
    """A file-name-safe name for the database: the SQLite file stem or the server database name."""
    name = Path(url.database).stem if url.backend == "sqlite" and url.database else (url.database or "db")
    return re.sub(r"[^A-Za-z0-9.-]+", "-", name).strip("-.") or "db"


def new_backup_path(directory: Path, url: DatabaseURL, kind: str = "backup") -> Path:
    """A fresh, unique path for a backup of ``url`` (the directory is not created here)."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    name = f"{kind}_{label_for(url)}_{stamp}_{secrets.token_hex(3)}.{EXTENSIONS[url.backend]}"
    return directory / name


def backend_of(path: Path) -> str | None:
    """The backend a backup file belongs to, judged by its extension."""
    ext = path.suffix.lstrip(".")
    return next((backend for backend, e in EXTENSIONS.items() if e == ext), None)


def list_backups(directory: Path) -> list[BackupFile]:
    """Every memoria-stream backup file in ``directory``, oldest first."""
    if not directory.is_dir():
        return []
    found = [_describe(entry) for entry in directory.iterdir() if entry.is_file()]
    files = [f for f in found if f is not None]
    return sorted(files, key=lambda f: (f.created, f.path.name))


def _describe(path: Path) -> BackupFile | None:
    match = _NAME.match(path.name)
    if match is None:
        return None
    created = datetime.strptime(match["stamp"], "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=timezone.utc)
    backend = backend_of(path) or "unknown"
    return BackupFile(path, match["kind"], match["label"], created, backend, path.stat().st_size)


def prune(directory: Path, url: DatabaseURL, keep: int, kind: str = "backup") -> list[Path]:
    """Delete all but the ``keep`` newest backups of this kind of this database; return what was deleted."""
    if keep < 1:
        raise ValueError("keep must be at least 1")
    label, backend = label_for(url), url.backend
    same = [f for f in list_backups(directory) if (f.kind, f.label, f.backend) == (kind, label, backend)]
    doomed = [f.path for f in same[:-keep]]
    for path in doomed:
        path.unlink(missing_ok=True)
    return doomed
