"""Slices of a table encoded apart, so that two processes share the work of an export.

A slice is one of ``Connection.row_ranges`` (SQLite: a rowid range). Read in the backend's own
order and encoded as a batch that is not its table's first, a slice is exactly the bytes the whole
table's export holds at its place, but for the table's first slice written, which drops the
format's ``row_separator`` (JSON's comma; NDJSON has none). An export shares a table's slices between
itself and a worker process (``worker.py``, in the same snapshot), each taking the next as it frees,
then writes them in order: the file is the one a single process writes, byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from memoria_stream.codecs import encoder_for
from memoria_stream.codecs.base import Encoder, TableLayout
from memoria_stream.drivers.base import Connection, LiveColumn
from memoria_stream.model.types import Row
from memoria_stream.transfer.digests import digest_sum
from memoria_stream.transfer.plans import ExportPlan, export_plan


@dataclass(frozen=True)
class SliceRequest:
    table: str
    live: tuple[LiveColumn, ...]  # as the exporting process saw them: both build the same plan
    format: str
    within: tuple[int, int]
    batch_rows: int


@dataclass(frozen=True)
class EncodedSlice:
    data: bytes
    rows: int
    digest: int  # the slice's share of its table's trailer digest


def batch_digest(encoder: Encoder, layout: TableLayout, rows: Sequence[Row], data: bytes) -> int:
    """A batch's share of its table's trailer digest: of the bytes written, where the format has
    such a digest, else of the canonical rows in hand (what ``verify`` computes reading the file)."""
    if encoder.rows_digest_kind:
        return encoder.rows_digest(data)
    return digest_sum(layout.columns, rows)


class SliceEncoder:
    """Encodes the slices asked of one connection (a worker's); plans and encoders made once."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._plans: dict[tuple[str, tuple[LiveColumn, ...]], ExportPlan] = {}

    async def encode(self, request: SliceRequest) -> EncodedSlice:
        known = (request.table, request.live)
        plan = self._plans.get(known)
        if plan is None:
            plan = self._plans[known] = export_plan(request.table, request.live, self.conn.capabilities)
        return await encode_slice(self.conn, plan, encoder_for(request.format), request.within, request.batch_rows)


async def encode_slice(conn: Connection, plan: ExportPlan, encoder: Encoder, within: tuple[int, int],
                       batch_rows: int) -> EncodedSlice:
    parts: list[bytes] = []
    rows = digest = 0
    async for raw in conn.read(plan.layout.name, plan.layout.columns, batch_rows=batch_rows, within=within):
        if not raw:  # no separator may be written for no rows
            continue
        decoded = plan.decode(raw)
        data = encoder.rows(plan.layout, decoded, False)
        parts.append(data)
        rows += len(decoded)
        digest += batch_digest(encoder, plan.layout, decoded, data)
    return EncodedSlice(b"".join(parts), rows, digest)
