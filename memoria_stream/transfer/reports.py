"""What a run did, per table: the numbers the CLI prints and the API returns."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class TableReport:
    name: str
    rows: int = 0
    seconds: float = 0.0
    bytes: int = 0
    truncated: bool = False
    _started: float = field(default_factory=time.perf_counter, repr=False)

    def finish(self) -> None:
        self.seconds = time.perf_counter() - self._started

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "rows": self.rows, "seconds": round(self.seconds, 4), "truncated": self.truncated}


@dataclass
class RunReport:
    """The outcome of an export, import or copy."""

    operation: str
    format: str | None = None
    tables: dict[str, TableReport] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    created_tables: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def table(self, name: str) -> TableReport:
        if name not in self.tables:
            self.tables[name] = TableReport(name)
        return self.tables[name]

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    @property
    def total_rows(self) -> int:
        return sum(t.rows for t in self.tables.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "operation": self.operation,
            "format": self.format,
            "tables": [t.as_dict() for t in self.tables.values()],
            "total_rows": self.total_rows,
            "seconds": round(self.seconds, 4),
            "created_tables": self.created_tables,
            "warnings": self.warnings,
            "metadata": self.metadata,
        }
