"""Is a dump whole? Its rows against the header's ``row_count``s and the trailer's counts and digests.

Every file we write ends with a trailer: per table, the rows written and a digest of their content,
so a file cut at a line boundary or with a changed letter inside a value is told apart from the
file that was written. A JSON file's digest is the checksum ``verify`` computes (the sum of
canonical row digests mod 2**256, ``digests.py``); an NDJSON file's, announced by the header's
``row_digest``, is the sum of its row lines' XXH3-128 mod 2**128 (``codecs/ndjson.py``), which the
decoder computes as it reads: no value need be digested. An NDJSON file of ours whose header
announces no ``row_digest`` (written before there was one) carries the canonical checksum, and is
checked against it.
Memoria's own files have no trailer but announce each table's ``row_count`` in their header; a file
that announces nothing (header-less NDJSON, hand-made JSON) cannot be proven complete, which is
reported as a warning. ``import-data`` checks before COMMIT; ``verify FILE`` checks a file alone.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from memoria_stream.model.catalog import EXPORT_ORDER, get_table
from memoria_stream.codecs import decoder_for
from memoria_stream.codecs.base import Event, Metadata, RowBatch, TableLayout, Trailer
from memoria_stream.codecs.ndjson import ROW_DIGEST
from memoria_stream.transfer.digests import MODULUS, digest_sum
from memoria_stream.drivers.base import LiveColumn
from memoria_stream.drivers.sqlite import CAPABILITIES as _SQLITE
from memoria_stream.errors import InputError, VerificationError
from memoria_stream.transfer.plans import Canonical, ImportPlan
from memoria_stream.codecs.streams import open_source, sniff_format

GENERATOR = "memoria-stream"
LINE_MODULUS = 1 << 128
ROW_DIGEST_KEY = "row_digest"  # the header key naming a digest of the encoded rows (``Encoder.rows_digest_kind``)
# File rows are coerced exactly as an import would, but left canonical (no driver encoders): the
# values ``verify`` digests.
_CANONICAL = dataclasses.replace(_SQLITE, encoders={})


def trailer_object(counts: Mapping[str, int], sums: Mapping[str, int], kind: str | None = None) -> dict[str, Any]:
    """The trailer a file of ours ends with (``sums``: each table's digest total, canonical or of ``kind``)."""
    modulus, width = _digest_size(kind)
    return {"tables": [{"name": name, "row_count": counts[name], "digest": f"{sums.get(name, 0) % modulus:0{width}x}"}
                       for name in counts]}


def _digest_size(kind: str | None) -> tuple[int, int]:
    """The modulus and hex width of a trailer digest: the canonical checksum's, or that of ``kind``."""
    if kind is None:
        return MODULUS, 64
    if kind == ROW_DIGEST:
        return LINE_MODULUS, 32
    raise InputError(f"unknown {ROW_DIGEST_KEY} {kind!r:.40} in the header")


def is_ours(metadata: Mapping[str, Any]) -> bool:
    generator = metadata.get("generator")
    return isinstance(generator, str) and generator.startswith(GENERATOR)


@dataclass
class Tally:
    """What a file holds for one table: rows read and, when it could be computed, their checksum."""

    rows: int = 0
    digest: int | None = 0
    digest_error: str | None = None


@dataclass
class Problem:
    table: str | None
    message: str


class Completeness:
    """Watches a decoded file's events (``observe``) and judges it at the end (``problems``)."""

    def __init__(self, source: str, selected: Callable[[str], bool] = lambda name: True) -> None:
        self.source, self.selected = source, selected
        self.metadata: Metadata | None = None
        self.trailer: Trailer | None = None
        self.tallies: dict[str, Tally] = {}
        self.rows_after_trailer: str | None = None
        self._plans: dict[tuple[str, tuple[str, ...]], ImportPlan] = {}
        self._layouts: dict[ImportPlan, TableLayout] = {}
        self._canonical: tuple[RowBatch, Canonical] | None = None  # the last batch digested, as built

    def canonical(self, batch: RowBatch) -> Canonical | None:
        """``batch``'s rows as the digest saw them (canonical values), when it was digested: the load
        encodes these instead of coercing every value a second time."""
        return self._canonical[1] if self._canonical and self._canonical[0] is batch else None

    def observe(self, event: Event | object) -> bool:
        """Record ``event``; ``True`` when it is a trailer, which carries nothing to load."""
        if isinstance(event, Metadata):
            if self.metadata is not None:
                raise InputError("a second metadata header (two files joined?)", source=self.source, line=event.line)
            self.metadata = event
        elif isinstance(event, Trailer):
            if self.trailer is not None:
                raise InputError("a second trailer (two files joined?)", source=self.source, line=event.line)
            self.trailer = event
            return True
        elif isinstance(event, RowBatch) and self.selected(event.table):
            self._count(event)
        return False

    def _count(self, batch: RowBatch) -> None:
        if self.trailer is not None and self.rows_after_trailer is None:
            self.rows_after_trailer = batch.table
        tally = self.tallies.setdefault(batch.table, Tally())
        tally.rows += len(batch.rows)
        # Only a trailer carries digests; a file known to be someone else's is not digested.
        if tally.digest is None or (self.metadata is not None and not is_ours(self.metadata.values)):
            return
        if self.rows_digest_kind() is not None:  # the decoder digested the bytes it read
            tally.digest += batch.digest
            return
        try:
            plan = self._plan(batch)
            if plan is None:  # not a catalogue table: its values have no canonical types to digest
                tally.digest = None
                return
            rows = plan.build_batch(batch, self.source)
            tally.digest += digest_sum(plan.columns, rows)
            self._canonical = (batch, (self._layouts[plan], rows))
        except InputError as exc:  # the import's own conversion names it; keep it for the verdict
            tally.digest, tally.digest_error = None, exc.reason

    def _plan(self, batch: RowBatch) -> ImportPlan | None:
        table = get_table(batch.table)
        if table is None:
            return None
        keys = set().union(*batch.rows) if batch.rows else set()
        # The columns the rows carry (as the exporter wrote them), not the catalogue's: a column an
        # older source lacked is not filled in with a default the exporter never digested.
        columns = tuple(c for c in table.column_names if c in keys)
        plan = self._plans.get((batch.table, columns))
        if plan is None:
            live = [LiveColumn(c.name, c.type, True) for c in table.columns if c.name in columns]
            plan = self._plans[(batch.table, columns)] = ImportPlan(batch.table, live, _CANONICAL, lambda _: None)
            self._layouts[plan] = TableLayout(batch.table, plan.columns, tuple(c.type for c in live))
        return plan

    def rows_digest_kind(self) -> str | None:
        """The header's ``row_digest``: ``None`` when the trailer holds canonical checksums."""
        kind = self.metadata.values.get(ROW_DIGEST_KEY) if self.metadata else None
        return kind if isinstance(kind, str) else None

    def announced(self) -> dict[str, int]:
        """The selected tables' ``row_count``s from the header."""
        tables = self.metadata.values.get("tables") if self.metadata else None
        entries = tables if isinstance(tables, list) else []
        return {t["name"]: t["row_count"] for t in entries if isinstance(t, dict) and isinstance(t.get("name"), str)
                and isinstance(t.get("row_count"), int) and self.selected(t["name"])}

    def unprovable(self) -> bool:
        """Nothing to check against: no trailer and no announced counts."""
        return self.trailer is None and not self.announced()

    def problems(self) -> list[Problem]:
        found: list[Problem] = []  # those naming a table first: the one-line error names the first
        for name, count in self.announced().items():
            rows = self.rows_of(name)
            if rows != count:
                found.append(Problem(name, f"the header announces {count} rows, the file holds {rows}: "
                                           "the file was cut short (or edited)"))
        ours = self.metadata is not None and is_ours(self.metadata.values)
        if self.trailer is None and ours:
            found.append(Problem(None, "written by memoria-stream but its trailer is missing: the file was cut "
                                       "short (or edited)"))
        if self.trailer is not None:
            found += self._against_trailer(self.trailer)
        return found

    def rows_of(self, name: str) -> int:
        tally = self.tallies.get(name)
        return tally.rows if tally else 0

    def _against_trailer(self, trailer: Trailer) -> list[Problem]:
        try:
            modulus, width = _digest_size(self.rows_digest_kind())
        except InputError as exc:
            return [Problem(None, exc.reason)]
        entries = trailer.values.get("tables")
        if not isinstance(entries, list) or not all(_valid_entry(e, width) for e in entries):
            return [Problem(None, "malformed trailer: expected {\"tables\": [{\"name\", \"row_count\", \"digest\"}] "
                                  f"with digests of {width} hex digits")]
        found: list[Problem] = []
        if self.rows_after_trailer:
            found.append(Problem(self.rows_after_trailer, "rows after the trailer (two files joined?)"))
        listed = {e["name"] for e in entries}
        for name in sorted(set(self.tallies) - listed):
            found.append(Problem(name, "rows of a table the trailer does not list"))
        for entry in [e for e in entries if self.selected(e["name"])]:
            found += self._entry(entry, modulus)
        return found

    def _entry(self, entry: dict[str, Any], modulus: int) -> list[Problem]:
        name, rows = entry["name"], self.rows_of(entry["name"])
        if rows != entry["row_count"]:
            return [Problem(name, f"the trailer records {entry['row_count']} rows, the file holds {rows}")]
        tally = self.tallies.get(name, Tally())
        if tally.digest_error:
            return [Problem(name, f"cannot check the content against the trailer: {tally.digest_error}")]
        if get_table(name) is not None and tally.digest is not None and tally.digest % modulus != int(entry["digest"], 16):
            return [Problem(name, "the content differs from the trailer's digest: a value was changed")]
        return []


def _counted_entry(entry: Any) -> bool:
    return isinstance(entry, dict) and isinstance(entry.get("name"), str) and isinstance(entry.get("row_count"), int)


def _valid_entry(entry: Any, width: int) -> bool:
    if not _counted_entry(entry):
        return False
    digest = entry.get("digest")
    return (isinstance(digest, str) and len(digest) == width
            and all(ch in "0123456789abcdef" for ch in digest))


def check_import(tracker: Completeness, warn: Callable[[str], None], *, accept_altered: bool) -> None:
    """Before COMMIT: raise ``InputError`` (rolls the import back) when the file is not whole."""
    problems = tracker.problems()
    if accept_altered:
        shown = "; ".join(_render(p) for p in problems) if problems else "no difference found"
        warn(f"{tracker.source}: --accept-altered: imported without the completeness check ({shown})")
        return
    if problems:
        first = problems[0]
        raise InputError(first.message, source=tracker.source, table=first.table)
    if tracker.unprovable():
        warn(f"{tracker.source}: the file announces no row counts and has no trailer: its completeness "
             "cannot be proven")


def _render(problem: Problem) -> str:
    return f"table {problem.table}: {problem.message}" if problem.table else problem.message


# --- verify FILE ----------------------------------------------------------------------------------

@dataclass
class FileReport:
    """``verify FILE``: per table the rows read, the header's and the trailer's counts."""

    source: str
    tables: list[tuple[str, int, int | None, int | None]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    basis: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems

    def render(self) -> str:
        width = max([len(t[0]) for t in self.tables] + [5])
        lines = [f"file: {self.source} ({self.basis})",
                 f"{'table':<{width}}  {'rows':>10}  {'header':>10}  {'trailer':>10}"]
        for name, rows, header, trailer in self.tables:
            lines.append(f"{name:<{width}}  {rows:>10}  {_shown(header):>10}  {_shown(trailer):>10}")
        return "\n".join(lines)

    def raise_for_damage(self) -> None:
        if self.problems:
            more = len(self.problems) - 3
            shown = "; ".join(_render(p) for p in self.problems[:3]) + (f"; and {more} more" if more > 0 else "")
            raise VerificationError(f"{self.source}: damaged: {shown}")

    def as_dict(self) -> dict[str, object]:
        return {"file": self.source, "ok": self.ok, "basis": self.basis, "seconds": round(self.seconds, 4),
                "tables": [{"name": n, "rows": r, "header": h, "trailer": t} for n, r, h, t in self.tables],
                "problems": [_render(p) for p in self.problems]}


def _shown(count: int | None) -> str:
    return "-" if count is None else str(count)


async def verify_file(path: str | Path, *, tables: list[str] | None = None) -> FileReport:
    """Check a dump against its own header and trailer (no database)."""
    started = time.perf_counter()
    source = str(path)
    tracker = Completeness(source, (lambda name: name in tables) if tables else (lambda name: True))
    try:
        async with open_source(path, name=source) as stream:
            fmt, stream = await sniff_format(stream)
            async for event in decoder_for(fmt).events(stream, source=source):
                tracker.observe(event)
    except InputError as exc:  # a file that no longer parses is damaged too
        raise VerificationError(f"damaged: {exc}") from None
    report = FileReport(source, problems=tracker.problems(), basis=_basis(tracker))
    if tracker.unprovable():
        report.problems.append(Problem(None, "announces no row counts and has no trailer: nothing proves it whole"))
    trailer = _trailer_counts(tracker)
    announced = tracker.announced()
    names = set(tracker.tallies) | set(announced) | set(trailer)
    ordered = [n for n in EXPORT_ORDER if n in names] + sorted(names - set(EXPORT_ORDER))
    report.tables = [(n, tracker.rows_of(n), announced.get(n), trailer.get(n)) for n in ordered]
    report.seconds = time.perf_counter() - started
    return report


def _basis(tracker: Completeness) -> str:
    if tracker.trailer is not None:
        return "checked against its header and trailer: counts and content digests"
    if tracker.announced():
        return "no trailer: counts checked against its header, content not provable"
    return "no header counts, no trailer"


def _trailer_counts(tracker: Completeness) -> dict[str, int]:
    entries = tracker.trailer.values.get("tables") if tracker.trailer else None
    return {e["name"]: e["row_count"] for e in entries or [] if _counted_entry(e) and tracker.selected(e["name"])}
