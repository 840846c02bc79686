"""Private temp files holding converted row batches that must wait for their parent tables.

An import into PostgreSQL as an application role (no replica mode, FKs not deferrable) has to insert
parents before children, and Memoria's JSON lists children first: such tables are parked here batch
by batch and loaded later, so memory stays flat however large the file.

Files are 0600 in a 0700 directory named ``memoria-stream-spool-<pid>-…`` under the system temp dir
(``TMPDIR``). The directory is removed when the import ends, however it ends; one left by a process
that died (SIGKILL, power loss) is removed by the next import, which finds its pid no longer running.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import shutil
import tempfile
from pathlib import Path
from typing import IO, AsyncIterator, Iterable, Iterator

from memoria_stream.errors import OutputError
from memoria_stream.model.types import Row

PREFIX = "memoria-stream-spool-"


class Spool:
    """One file per spooled table, created on first use. Batches are pickled: they hold the values
    exactly as the driver will receive them (datetimes, bytes, JSON text…), and only this process
    ever writes the files it reads back (private directory), so unpickling them is safe."""

    def __init__(self) -> None:
        self.directory: Path | None = None
        self._files: dict[str, tuple[Path, IO[bytes]]] = {}
        self._created = 0  # files made so far: each gets a new name

    @property
    def tables(self) -> list[str]:
        return list(self._files)

    def holds(self, table: str) -> bool:
        return table in self._files

    def add(self, table: str, rows: list[Row], size: int) -> None:
        """Park one batch; ``size`` (its input bytes, for progress) comes back with it."""
        _, file = self._files.get(table) or self._open(table)
        self.dump((rows, size), file)

    def batches(self, table: str) -> Iterator[tuple[list[Row], int]]:
        """The batches of ``table`` in the order they were added; its file is removed once read."""
        path, file = self._files.pop(table)
        file.close()
        with path.open("rb") as reader:
            while True:
                try:
                    yield pickle.load(reader)
                except EOFError:
                    break
        path.unlink()

    def _open(self, table: str) -> tuple[Path, IO[bytes]]:
        self._files[table] = self.new_file("rows")
        return self._files[table]

    def new_file(self, suffix: str) -> tuple[Path, IO[bytes]]:
        """A new private file in the spool's directory, open for writing; the caller closes it."""
        if self.directory is None:
            self.directory = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-"))  # mode 0700
        self._created += 1
        path = self.directory / f"{self._created}.{suffix}"
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            raise OutputError(f"cannot create the import's temp file in {self.directory}: {exc}") from exc
        return path, os.fdopen(descriptor, "wb")

    def dump(self, value: object, file: IO[bytes]) -> None:
        """Pickle ``value`` into one of the spool's files."""
        with self._writing():
            pickle.dump(value, file, protocol=pickle.HIGHEST_PROTOCOL)

    def write_lines(self, lines: Iterable[bytes], file: IO[bytes]) -> None:
        """Write ``lines`` (which hold no newline) into one of the spool's files, a newline after each."""
        with self._writing():
            file.writelines(line + b"\n" for line in lines)

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            raise OutputError(f"cannot write the import's temp file in {self.directory}: {exc}") from exc

    def remove(self) -> None:
        for _, file in self._files.values():
            file.close()
        self._files.clear()
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None


@contextlib.asynccontextmanager
async def open_spool() -> AsyncIterator[Spool]:
    """A spool removed on exit, success or failure; stale spools of dead processes go first."""
    remove_stale_spools()
    spool = Spool()
    try:
        yield spool
    finally:
        spool.remove()


def remove_stale_spools(root: Path | None = None) -> list[Path]:
    """Remove our spool directories whose process is gone (only ours: our prefix, our uid, dead pid)."""
    removed = []
    base = root or Path(tempfile.gettempdir())
    with contextlib.suppress(OSError):
        for entry in base.iterdir():
            pid = _owner_pid(entry)
            if pid is not None and not _running(pid):
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry)
    return removed


def _owner_pid(entry: Path) -> int | None:
    if not entry.name.startswith(PREFIX):
        return None
    pid = entry.name[len(PREFIX):].split("-", 1)[0]
    try:
        is_ours = entry.is_dir() and not entry.is_symlink() and entry.stat().st_uid == os.getuid()
    except OSError:
        return None
    return int(pid) if is_ours and pid.isdigit() else None


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True
