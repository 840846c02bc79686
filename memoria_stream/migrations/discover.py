"""``migrate list`` and ``migrate run``: discover the migration scripts and run each in its own process.

Scripts live in ``scripts/migrations/`` in the repository and ship inside the package as
``memoria_stream._migration_scripts``; ``MEMORIA_MIGRATIONS_DIR`` (or ``--migrations-dir``) points
elsewhere. A script's name is its file stem and its description the first line of its docstring;
scripts under the root's ``archive/`` folder are archived. Each run is recorded in the table
``memoria_stream_migrations`` of the target database when, and only when, the script exits 0.
"""

from __future__ import annotations

import ast
import importlib.resources
import os
from dataclasses import dataclass
from pathlib import Path

from memoria_stream.errors import InputError, MemoriaStreamError

ENV_DIR = "MEMORIA_MIGRATIONS_DIR"
_PACKAGE = "memoria_stream._migration_scripts"
_CHECKOUT_DIR = Path(__file__).resolve().parents[2] / "scripts" / "migrations"
_ARCHIVE = "archive"


class MigrationFailed(MemoriaStreamError):
    """Raised when a migration script exits with a non-zero status."""


@dataclass(frozen=True)
class MigrationScript:
    """One discovered script; ``error`` is set when its source cannot be read or parsed."""

    name: str
    path: Path
    description: str | None
    archived: bool
    error: str | None = None

    @property
    def filename(self) -> str:
        return self.path.name


def migrations_root(override: str | None = None) -> Path:
    """The scripts folder: the option, then ``MEMORIA_MIGRATIONS_DIR``, the package, the checkout."""
    chosen = override or os.environ.get(ENV_DIR)
    if chosen:
        return Path(chosen).resolve()
    try:
        packaged = importlib.resources.files(_PACKAGE)
    except ModuleNotFoundError:  # a checkout whose install does not map the package yet
        return _CHECKOUT_DIR
    if isinstance(packaged, Path) and packaged.is_dir():
        return packaged.resolve()
    return _CHECKOUT_DIR


def discover(root: Path, *, include_archived: bool = False) -> list[MigrationScript]:
    """Every ``*.py`` under ``root`` (names starting ``__`` skipped), sorted by name then path."""
    if not root.is_dir():
        return []
    found = []
    for path in root.rglob("*.py"):
        relative = path.relative_to(root)
        if path.name.startswith("__") or any(p.startswith("__") for p in relative.parts[:-1]):
            continue
        archived = relative.parts[0] == _ARCHIVE and len(relative.parts) > 1
        if archived and not include_archived:
            continue
        description, error = _describe(path)
        found.append(MigrationScript(path.stem, path.resolve(), description, archived, error))
    return sorted(found, key=lambda m: (m.name, str(m.path)))


def _describe(path: Path) -> tuple[str | None, str | None]:
    try:
        docstring = ast.get_docstring(ast.parse(path.read_bytes(), filename=str(path)))
    except SyntaxError as exc:
        return None, f"syntax error on line {exc.lineno}: {exc.msg}"
    except (OSError, ValueError) as exc:  # ValueError: NUL bytes or undecodable source
        return None, f"cannot read: {exc}"
    if not docstring or not docstring.strip():
        return None, None
    return docstring.strip().splitlines()[0].strip(), None


def find(name: str, root: Path, *, include_archived: bool = False) -> MigrationScript:
    """The script whose stem, filename or path relative to ``root`` is ``name``."""
    wanted = name.strip()
    stem = wanted[:-3] if wanted.endswith(".py") else wanted
    matches = [m for m in discover(root, include_archived=include_archived)
               if m.name == stem or m.filename == wanted or _relative(m, root) == wanted]
    if not matches:
        hint = ""
        if not include_archived and any(m.name == stem for m in discover(root, include_archived=True)):
            hint = " (it is archived: add --include-archived)"
        raise InputError(f"unknown migration: {name}{hint}")
    if len(matches) > 1:
        paths = ", ".join(_relative(m, root) for m in matches)
        raise InputError(f"migration name {name!r} is ambiguous ({paths}); give the path relative to {root}")
    return matches[0]


def _relative(script: MigrationScript, root: Path) -> str:
    return script.path.relative_to(root).as_posix()
