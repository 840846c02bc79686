"""What a dry run found: the load's plan per table and every problem, with where it is."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MAX_PROBLEMS = 100
VALUE_CHARS = 40  # an offending value is shown shortened to about this many characters


def shorten(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= VALUE_CHARS else text[:VALUE_CHARS - 1] + "…"


def key_text(key: Any) -> str | None:
    return None if key is None else shorten(key) if not isinstance(key, (str, int)) else str(key)[:VALUE_CHARS]


@dataclass
class Problem:
    """One reason the load would fail, with where it is: ``line`` (NDJSON) or ``row`` (JSON, copy)."""

    message: str
    table: str | None = None
    column: str | None = None
    key: str | None = None
    line: int | None = None
    row: int | None = None
    value: str | None = None

    def render(self, source: str) -> str:
        where = f"{source}:{self.line}" if self.line is not None else source
        parts = [where]
        if self.table:
            parts.append(f"table {self.table}")
        if self.row is not None:
            parts.append(f"row {self.row}")
        if self.key is not None:
            parts.append(f"key {self.key}")
        if self.column:
            parts.append(f"column {self.column}")
        shown = f" (value {self.value})" if self.value is not None else ""
        return f"{', '.join(parts)}: {self.message}{shown}"

    def as_dict(self) -> dict[str, Any]:
        return {"table": self.table, "column": self.column, "key": self.key, "line": self.line,
                "row": self.row, "value": self.value, "message": self.message}


@dataclass
class TablePlan:
    """What the load would do to one table: ``create``, ``empty`` (then load) or ``append``."""

    name: str
    action: str
    rows: int = 0


@dataclass
class PreflightReport:
    source: str
    target: str = ""
    max_problems: int = MAX_PROBLEMS
    tables: dict[str, TablePlan] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)  # the first ``max_problems``
    problem_count: int = 0  # all of them
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.problem_count == 0

    @property
    def total_rows(self) -> int:
        return sum(t.rows for t in self.tables.values())

    def add(self, problem: Problem) -> None:
        self.problem_count += 1
        if len(self.problems) < self.max_problems:
            self.problems.append(problem)

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    def verdict(self) -> str:
        if self.ok:
            return f"dry run: the load would succeed ({self.total_rows:,} rows); nothing was changed"
        shown = f" (first {len(self.problems)} shown)" if len(self.problems) < self.problem_count else ""
        return (f"dry run: the load would FAIL: {self.problem_count:,} problem"
                f"{'s' if self.problem_count != 1 else ''}{shown}; nothing was changed")

    def render(self) -> str:
        width = max([len(n) for n in self.tables] + [5])
        lines = [f"dry run of {self.source} into {self.target}".rstrip(),
                 f"{'table':<{width}}  {'action':<7}  {'rows':>12}"]
        lines += [f"{t.name:<{width}}  {t.action:<7}  {t.rows:>12,}" for t in self.tables.values()]
        lines += [f"warning: {w}" for w in self.warnings]
        lines += [f"problem: {p.render(self.source)}" for p in self.problems]
        lines.append(self.verdict())
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {"operation": "dry-run", "ok": self.ok, "source": self.source, "target": self.target,
                "tables": [{"name": t.name, "action": t.action, "rows": t.rows} for t in self.tables.values()],
                "total_rows": self.total_rows, "problem_count": self.problem_count,
                "problems": [p.as_dict() for p in self.problems], "warnings": self.warnings,
                "seconds": round(self.seconds, 4)}
