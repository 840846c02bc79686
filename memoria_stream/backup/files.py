"""Backup file names, listing and retention.

A name is ``<kind>_<label>_<identity>_<UTC timestamp with microseconds>_<random hex>.<ext>``, e.g.
``guard_memoria_5e0c1b7a_20250101T120000.123456Z_3f9a1c.sqlite3``: two backups taken in the same
second (or even the same microsecond) never collide, and names sort by time, so retention is a sort.
``<identity>`` is a short digest of which database it is (backend, host, port, database; for SQLite
the absolute path), so that two ``memoria.db`` files, or two servers' ``memoria`` databases, sharing
a backup directory never prune each other's backups.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from memoria_stream.drivers.backends import BACKENDS, backend_for_extension
from memoria_stream.drivers.urls import DatabaseURL

DEFAULT_DIR = Path("backups")
KINDS = ("backup", "guard")
# One format per backend; the extension says which restore path a file takes.
EXTENSIONS = {b.name: b.backup_extension for b in BACKENDS.values()}

# Labels never hold '_' (see label_for); names from before identities were added have none.
_NAME = re.compile(
    r"^(?P<kind>backup|guard)_(?P<label>[^_]+)(?:_(?P<identity>[0-9a-f]{8}))?"
    r"_(?P<stamp>\d{8}T\d{6}\.\d{6}Z)_(?P<rand>[0-9a-f]{6})\.(?P<ext>"
    + "|".join(map(re.escape, EXTENSIONS.values())) + ")$"
)


@dataclass(frozen=True)
class BackupFile:
    """One backup file found in a backup directory."""

    path: Path
    kind: str
    label: str
    identity: str | None  # identity_of() of the database; None for names written before it existed
    created: datetime
    backend: str
    size: int


def backup_dir(path: str | os.PathLike[str] | None) -> Path:
    """The directory backups go to: ``path``, or ``backups/`` in the working directory."""
    return Path(path) if path is not None else DEFAULT_DIR


def label_for(url: DatabaseURL) -> str:
    """A file-name-safe name for the database: the SQLite file stem or the server database name."""
    name = url.name or "db"
    return re.sub(r"[^A-Za-z0-9.-]+", "-", name).strip("-.") or "db"


def identity_of(url: DatabaseURL) -> str:
    """Eight hex digits of ``url.identity()``: short enough for a file name."""
    return hashlib.sha256(url.identity().encode()).hexdigest()[:8]


def new_backup_path(directory: Path, url: DatabaseURL, kind: str = "backup") -> Path:
    """A fresh, unique path for a backup of ``url`` (the directory is not created here)."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    name = (f"{kind}_{label_for(url)}_{identity_of(url)}_{stamp}_{secrets.token_hex(3)}"
            f".{EXTENSIONS[url.backend]}")
    return directory / name


def backend_of(path: Path) -> str | None:
    """The backend a backup file belongs to, judged by its extension."""
    backend = backend_for_extension(path.suffix.lstrip("."))
    return backend.name if backend else None


def list_backups(directory: Path, url: DatabaseURL | None = None) -> list[BackupFile]:
    """Every memoria-stream backup file in ``directory`` (only those of ``url``'s database, when
    given), oldest first."""
    if not directory.is_dir():
        return []
    found = [_describe(entry) for entry in directory.iterdir() if entry.is_file()]
    files = [f for f in found if f is not None and (url is None or _belongs_to(f, url))]
    return sorted(files, key=lambda f: (f.created, f.path.name))


def _belongs_to(backup: BackupFile, url: DatabaseURL) -> bool:
    # A file without an identity could be any database's: it never counts as this one's.
    return (backup.backend, backup.identity) == (url.backend, identity_of(url))


def _describe(path: Path) -> BackupFile | None:
    match = _NAME.match(path.name)
    if match is None:
        return None
    created = datetime.strptime(match["stamp"], "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=timezone.utc)
    backend = backend_of(path) or "unknown"
    return BackupFile(path, match["kind"], match["label"], match["identity"], created, backend, path.stat().st_size)


def prune(directory: Path, url: DatabaseURL, keep: int, kind: str = "backup") -> list[Path]:
    """Delete all but the ``keep`` newest backups of this kind of this database; return what was deleted."""
    if keep < 1:
        raise ValueError("keep must be at least 1")
    same = [f for f in list_backups(directory, url) if f.kind == kind]
    doomed = [f.path for f in same[:-keep]]
    for path in doomed:
        path.unlink(missing_ok=True)
    return doomed
