"""``verify A B``: are two databases or export files the same data, table by table?

Each side is a database URL (read inside one snapshot) or an export file (JSON/NDJSON, gzip or
not). Per table: the row count and an order-independent checksum over canonical values (see
``digests.py``), and, when they differ, the first differing primary key. Memory stays flat: the
per-row digests wait in temporary SQLite files, not in memory.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from memoria_stream.model.catalog import EXPORT_ORDER, get_table
from memoria_stream.codecs import decoder_for
from memoria_stream.codecs.base import Metadata, RowBatch, TableStart
from memoria_stream.transfer.digests import DigestStore, add_digests, digest_stores, first_difference, key_text, row_digests
from memoria_stream.drivers import connect
from memoria_stream.drivers.base import LiveColumn
from memoria_stream.drivers.sqlite import CAPABILITIES as _SQLITE
from memoria_stream.errors import VerificationError
from memoria_stream.transfer.pipeline import run_stages
from memoria_stream.transfer.plans import ImportPlan, check_table_names, export_plan
from memoria_stream.codecs.streams import open_source, sniff_format
from memoria_stream.model.types import Row
from memoria_stream.drivers.urls import mask_url

# File rows are coerced and completed exactly as an import would, but left canonical (no encoders).
_CANONICAL = dataclasses.replace(_SQLITE, encoders={})


@dataclass
class TableCheck:
    """One table on both sides; ``rows_*`` is ``None`` where the table is absent."""

    name: str
    rows_a: int | None = None
    rows_b: int | None = None
    checksum_a: int = 0
    checksum_b: int = 0
    first_difference: str | None = None

    @property
    def match(self) -> bool:
        return (self.rows_a or 0) == (self.rows_b or 0) and self.checksum_a == self.checksum_b


@dataclass
class VerifyReport:
    """The outcome of ``verify``: one ``TableCheck`` per table, in catalogue order."""

    a: str
    b: str
    tables: list[TableCheck] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(t.match for t in self.tables)

    @property
    def mismatched(self) -> list[str]:
        return [t.name for t in self.tables if not t.match]

    def render(self) -> str:
        """The table the CLI prints: table, rows A, rows B, match."""
        width = max([len(t.name) for t in self.tables] + [5])
        lines = [f"A: {self.a}", f"B: {self.b}", f"{'table':<{width}}  {'rows A':>10}  {'rows B':>10}  match"]
        for t in self.tables:
            shown = "yes" if t.match else "NO" + (f"  first differing key {t.first_difference}" if t.first_difference else "")
            lines.append(f"{t.name:<{width}}  {_count(t.rows_a):>10}  {_count(t.rows_b):>10}  {shown}")
        return "\n".join(lines)

    def raise_for_difference(self) -> None:
        """Raise ``VerificationError`` naming each differing table (and its first differing key)."""
        if self.ok:
            return
        parts = [f"{t.name} (rows {_count(t.rows_a)} vs {_count(t.rows_b)}"
                 + (f", first differing key {t.first_difference})" if t.first_difference else ")")
                 for t in self.tables if not t.match]
        raise VerificationError(f"{self.a} and {self.b} differ: {'; '.join(parts)}")

    def as_dict(self) -> dict[str, object]:
        return {"a": self.a, "b": self.b, "ok": self.ok, "seconds": round(self.seconds, 4), "tables": [
            {"name": t.name, "rows_a": t.rows_a, "rows_b": t.rows_b, "match": t.match,
             "checksum_a": f"{t.checksum_a:064x}", "checksum_b": f"{t.checksum_b:064x}",
             "first_difference": t.first_difference} for t in self.tables]}


def _count(rows: int | None) -> str:
    return "-" if rows is None else str(rows)


async def verify(a: str, b: str, *, tables: Sequence[str] | None = None) -> VerifyReport:
    """Compare two sides, each a database URL (``"://"`` in it) or an export file path."""
    started = time.perf_counter()
    wanted = _wanted(tables)
    with tempfile.TemporaryDirectory(prefix="memoria-verify-") as folder:
        async with digest_stores(Path(folder)) as (store_a, store_b):
            side_a, side_b = _Side(a, wanted, store_a), _Side(b, wanted, store_b)
            await run_stages(side_a.scan, side_b.scan)
            report = VerifyReport(_label(a), _label(b))
            for name in [n for n in EXPORT_ORDER if n in side_a.rows or n in side_b.rows]:
                check = TableCheck(name, side_a.rows.get(name), side_b.rows.get(name),
                                   side_a.sums.get(name, 0), side_b.sums.get(name, 0))
                if not check.match:
                    check.first_difference = await first_difference(store_a, store_b, name)
                report.tables.append(check)
    report.seconds = time.perf_counter() - started
    return report


def _wanted(tables: Sequence[str] | None) -> list[str]:
    if not tables:
        return list(EXPORT_ORDER)
    names = set(check_table_names(tables))
    return [n for n in EXPORT_ORDER if n in names]


def _label(side: str) -> str:
    return mask_url(side) if "://" in side else side


class _Side:
    """Scans one database or file into counts, checksums and per-key digests."""

    def __init__(self, where: str, wanted: list[str], store: DigestStore) -> None:
        self.where, self.wanted, self.store = where, wanted, store
        self.rows: dict[str, int] = {}
        self.sums: dict[str, int] = {}

    async def scan(self) -> None:
        await (self._database() if "://" in self.where else self._file())

    async def _database(self) -> None:
        async with connect(self.where) as conn, conn.snapshot():
            live = set(await conn.table_names())
            for name in [n for n in self.wanted if n in live]:
                plan = export_plan(name, await conn.columns(name), conn.capabilities)
                self._present(name)
                async for raw in conn.read(name, plan.layout.columns, batch_rows=5000):
                    await self._add(name, plan.layout.columns, plan.decode(raw))

    async def _file(self) -> None:
        plans: dict[str, ImportPlan] = {}
        async with open_source(self.where) as stream:
            fmt, stream = await sniff_format(stream)
            async for event in decoder_for(fmt).events(stream, source=self.where):
                if isinstance(event, Metadata):
                    for name in event.table_names:
                        self._present(name)
                elif isinstance(event, TableStart):
                    self._present(event.table)
                elif isinstance(event, RowBatch) and event.table in self.wanted:
                    plan = plans.get(event.table) or plans.setdefault(event.table, _file_plan(event.table))
                    await self._add(event.table, plan.columns, _built(plan, event, self.where))

    def _present(self, name: str) -> None:
        if name in self.wanted:
            self.rows.setdefault(name, 0)
            self.sums.setdefault(name, 0)

    async def _add(self, name: str, columns: Sequence[str], rows: Sequence[Row]) -> None:
        table = get_table(name)
        assert table is not None
        key_at = [columns.index(c) for c in table.primary_key]
        items = list(zip((key_text(key_at, row) for row in rows), row_digests(columns, rows)))
        self.rows[name] = self.rows.get(name, 0) + len(rows)
        self.sums[name] = add_digests(self.sums.get(name, 0), (h for _, h in items))
        await self.store.add(name, items)


def _file_plan(name: str) -> ImportPlan:
    table = get_table(name)
    assert table is not None
    live = [LiveColumn(c.name, c.type, c.nullable) for c in table.columns]
    return ImportPlan(name, live, _CANONICAL, lambda message: None)


def _built(plan: ImportPlan, batch: RowBatch, source: str) -> list[Row]:
    where = batch.lines or range(batch.first_line, batch.first_line + len(batch.rows))
    return [plan.build(obj, line, source, batch.by_row) for obj, line in zip(batch.rows, where)]
