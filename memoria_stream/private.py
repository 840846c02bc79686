"""Files and folders only their owner can read: every export, backup and spool holds private data."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

# Exports and backups hold a whole database: only the owner may read them, whatever the umask.
PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700


def create_private_file(path: Path) -> int:
    """Create the new file ``path`` readable by its owner only and return a descriptor open for writing.

    ``O_EXCL``: the name must be fresh, so no file (or link) planted there beforehand is reused. The
    explicit ``fchmod`` makes the mode independent of the umask."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), PRIVATE_FILE)
    try:
        os.fchmod(fd, PRIVATE_FILE)
    except OSError:
        os.close(fd)
        raise
    return fd


def make_private_dirs(directory: Path) -> None:
    """Create ``directory`` and its missing parents with mode 0700; existing folders are left as they are."""
    missing: list[Path] = []
    for folder in [directory, *directory.parents]:
        if folder.exists():
            break
        missing.append(folder)
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):  # a concurrent run made it: not ours to change
            folder.mkdir(PRIVATE_DIR)
            os.chmod(folder, PRIVATE_DIR)
    if not directory.is_dir():
        raise NotADirectoryError(f"not a directory: {directory}")
