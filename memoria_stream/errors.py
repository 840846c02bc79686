"""One exception root with a branch per cause; the CLI maps each branch to an exit code."""

from __future__ import annotations


class MemoriaStreamError(Exception):
    """Root of every error memoria-stream raises on purpose."""

    exit_code = 1


class InputError(MemoriaStreamError):
    """Raised when the user's data or arguments are wrong (malformed file, unknown table, bad value)."""

    exit_code = 3

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        line: int | None = None,
        table: str | None = None,
        column: str | None = None,
        row: int | None = None,
    ) -> None:
        self.reason = message
        self.source, self.line, self.table, self.column, self.row = source, line, table, column, row
        super().__init__(self._render())

    def _render(self) -> str:
        where = self.source or ""
        if self.line is not None:
            where = f"{where}:{self.line}" if where else f"line {self.line}"
        row = f"row {self.row}" if self.row is not None else ""
        parts = [p for p in (where, _field("table", self.table), row, _field("column", self.column)) if p]
        return f"{', '.join(parts)}: {self.reason}" if parts else self.reason


class ConfigurationError(MemoriaStreamError):
    """Raised when the setup is wrong: a malformed URL, an unsupported scheme, a missing driver package."""

    exit_code = 4


class DatabaseError(MemoriaStreamError):
    """Raised when a database server or file fails: unreachable, refused, or an error mid-statement."""

    exit_code = 5


class IntegrityFailure(DatabaseError):
    """Raised when the target's constraints reject the data (foreign keys, uniqueness, value ranges)."""

    exit_code = 6


class OutputError(MemoriaStreamError):
    """Raised when an output file cannot be written (disk full, no permission); no partial file is left."""

    exit_code = 8


class VerificationError(MemoriaStreamError):
    """Raised when two datasets that should be equal are not."""

    exit_code = 7


class InternalError(MemoriaStreamError):
    """Raised when memoria-stream itself is at fault: a bug worth reporting."""

    exit_code = 70


def _field(name: str, value: str | None) -> str:
    return f"{name} {value}" if value else ""
