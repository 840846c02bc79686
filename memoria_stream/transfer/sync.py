"""``copy --sync``: bring a target up to date with a source by moving only the rows that differ.

Both sides are read at once as primary keys and fingerprints (``Connection.fingerprints``): the
source here, inside the snapshot its changed rows are read from later (with a helper process pinned
to the same snapshot where hashing it is Python work), the target on a connection of its own — or
not at all where the server's sum of its prints equals the memory's (``fingerprint_summary``: a
staging target nobody wrote to). Where a table has no memory of the last sync yet
(``sync_memory.py``), canonical digests (the ones ``verify`` uses) are read too. Each side is
spooled to private temporary files partitioned by key (``keyspool.py``), so memory stays flat
whatever the table sizes, and compared a partition at a time: against the memory, a key whose
prints on both sides are the remembered ones is equal, and only the others are compared in full
(``_Resolver``).

Then, in one target transaction: deleted and updated keys are removed (children first), inserted
and updated rows are read from the source by key inside the same snapshot (updated ones already
were, by the comparison) and written (parents first; a table the target holds no row of is
streamed whole), sequences are moved past the ids, and the foreign keys of the end state are
checked where the sync could break them, before COMMIT. An update is a delete plus an insert of
the key: the same on every backend, no upsert dialect. The next memory is written beside the old
one and replaces it once the transaction has committed.

Reading keys and prints is the floor of the cost; everything beyond grows with the difference.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, AsyncIterator, Callable, Sequence

import anyio

from memoria_stream.drivers import connect
from memoria_stream.drivers.base import Connection, LiveColumn, StorageChanges, approximate_bytes, shielded
from memoria_stream.drivers.snapshots import shared_snapshot
from memoria_stream.drivers.urls import mask_url
from memoria_stream.errors import InputError, IntegrityFailure, InternalError
from memoria_stream.model.catalog import (
    EXPORT_ORDER, TABLES, ForeignKey, delete_order, get_table, insert_order)
from memoria_stream.model.types import Row
from memoria_stream.transfer.digests import row_digests
from memoria_stream.transfer.keyspool import (
    ARRIVE, READY, REMOVE, SUSPECT, Changes, Counts, Key, Scan, Spool, compare, joined, scan)
from memoria_stream.transfer.worker import Worker, scan_in_worker
from memoria_stream.transfer.sync_memory import (
    MemoryWriter, TableMemory, load, pair_folder, remembers_storage, signature, sweep,
)
from memoria_stream.transfer.export import OnBatch, resolve_tables
from memoria_stream.transfer.load import OnCounts, check_foreign_keys
from memoria_stream.transfer.pipeline import channel, fewer_collections, run_stages
from memoria_stream.transfer.plans import ExportPlan, ImportPlan, export_plan
from memoria_stream.transfer.reports import RunReport
from memoria_stream.transfer.schema import drop_tables, ensure_tables, live_tables

Live = dict[str, list[LiveColumn]]
STALE_MIN_ROWS = 5000  # below this many moved rows, reading them by key beats a second scan
WHOLE_ROWS = 5000  # rows per batch where a table is copied whole
FK_LOOKUPS = 2000  # up to this many changed keys, an FK is checked by key rather than by a table scan
FK_LOOKUPS_MAX = 50_000  # (or up to 1/20 of the child table, but never more than this many: a set of them is held)


# --- report -------------------------------------------------------------------------------------

@dataclass
class TableSync:
    """What ``--sync`` found (and, unless a dry run, did) for one table."""

    name: str
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0
    remembered: bool = False  # compared by fingerprints against the last sync's memory
    compared: int = 0  # rows read from both sides and compared by canonical digest

    @property
    def changed(self) -> int:
        return self.inserted + self.updated + self.deleted

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "inserted": self.inserted, "updated": self.updated,
                "deleted": self.deleted, "unchanged": self.unchanged, "remembered": self.remembered,
                "compared": self.compared}


@dataclass
class SyncReport:
    """The outcome of ``copy --sync``: per table, in catalogue order."""

    source: str
    target: str
    dry_run: bool = False
    tables: dict[str, TableSync] = field(default_factory=dict)
    created_tables: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def changed(self) -> int:
        return sum(t.changed for t in self.tables.values())

    def table(self, name: str) -> TableSync:
        return self.tables.setdefault(name, TableSync(name))

    def headline(self) -> str:
        if not self.changed and not self.created_tables:
            return (f"Nothing changed: {mask_url(self.target)} already equals {mask_url(self.source)} "
                    f"({len(self.tables)} tables compared); nothing was written")
        verb = "Would change" if self.dry_run else "Changed"
        tail = " (dry run: nothing was written)" if self.dry_run else ""
        return f"{verb} {self.changed} rows across {sum(1 for t in self.tables.values() if t.changed)} tables{tail}"

    def render(self) -> str:
        width = max([len(n) for n in self.tables] + [5])
        lines = [f"{'table':<{width}}  {'inserted':>9}  {'updated':>9}  {'deleted':>9}  {'unchanged':>10}"]
        lines += [f"{t.name:<{width}}  {t.inserted:>9}  {t.updated:>9}  {t.deleted:>9}  {t.unchanged:>10}"
                  for t in self.tables.values()]
        remembered = [t for t in self.tables.values() if t.remembered]
        if remembered:
            lines.append(f"remembered from the last sync: {len(remembered)} of {len(self.tables)} tables; "
                         f"{sum(t.compared for t in self.tables.values())} rows compared in full")
        if self.created_tables:
            lines.append(f"{'created' if not self.dry_run else 'would create'}: {', '.join(self.created_tables)}")
        return "\n".join([*lines, self.headline()])

    def as_dict(self) -> dict[str, Any]:
        return {"operation": "sync", "source": mask_url(self.source), "target": mask_url(self.target),
                "dry_run": self.dry_run, "changed": self.changed, "seconds": round(self.seconds, 4),
                "tables": [t.as_dict() for t in self.tables.values()], "created_tables": self.created_tables,
                "warnings": self.warnings}


# --- the sync -----------------------------------------------------------------------------------

async def sync_database(
    source_url: str,
    target_url: str,
    *,
    tables: Sequence[str] | None = None,
    dry_run: bool = False,
    on_batch: OnBatch | None = None,
    on_counts: OnCounts | None = None,
    allow_lossy: bool = False,
) -> SyncReport:
    """Make ``tables`` (default: every Memoria table in the source) of the target equal the source,
    writing only the rows that differ. With ``dry_run`` nothing is written; the report says what would
    be. A failure leaves the target as it was."""
    started = time.perf_counter()
    report = SyncReport(source_url, target_url, dry_run)
    async with connect(target_url) as target, \
            _source_snapshot(source_url, target, tables or EXPORT_ORDER) as (source, helper):
        job = _Sync(source, target, report)
        job.helper = helper
        job.on_batch, job.on_counts, job.allow_lossy = on_batch, on_counts, allow_lossy
        await job.run(tables)
    report.seconds = time.perf_counter() - started
    return report


@contextlib.asynccontextmanager
async def _source_snapshot(url: str, target: Connection,
                           tables: Sequence[str]) -> AsyncIterator[tuple[Connection, Worker | None]]:
    """The source inside its snapshot and, where its fingerprints are hashed in this process, a helper
    process pinned to the very same moment to take half of that work (the other core) — unless the
    memory knows the source's storage, so that only the rows of changed storage will be read."""
    async with connect(url) as source, contextlib.AsyncExitStack() as stack:
        helper = None
        if source.capabilities.fingerprints_in_client and not source.url.is_memory \
                and not remembers_storage(pair_folder(source.url, target.url), tables):
            helper = await stack.enter_async_context(Worker(url))
            await stack.enter_async_context(shared_snapshot(source, helper.pin, tables))
        else:
            await stack.enter_async_context(source.snapshot())
        yield source, helper


def _beside(path: Path, suffix: str) -> Path:
    return path.with_name(f"{path.name}-{suffix}")


class _Sync:
    """One ``--sync``: the source snapshot, the target, and the report being filled."""

    def __init__(self, source: Connection, target: Connection, report: SyncReport) -> None:
        self.source, self.target, self.report = source, target, report
        self.on_batch: OnBatch | None = None
        self.on_counts: OnCounts | None = None
        self.allow_lossy = False
        self.names: list[str] = []
        self._folder = pair_folder(source.url, target.url)
        self._signatures: dict[str, str] = {}
        self._keepers_to_commit: dict[str, MemoryWriter] = {}
        self.helper: Worker | None = None  # a process that scans a share of the source
        self.whole: set[str] = set()  # tables the target holds no row of: copied whole, not by key
        self.source_scans: list[Scan] = []
        self.spools = Path()
        self._described: dict[tuple[int, str], list[LiveColumn]] = {}
        self._units: dict[str, Any] = {}  # the source's storage in this snapshot, per table

    async def columns(self, conn: Connection, name: str) -> list[LiveColumn]:
        """``conn.columns(name)``, asked once per sync (no DDL runs once the comparison starts)."""
        found = self._described.get((id(conn), name))
        if found is None:
            found = self._described[(id(conn), name)] = await conn.columns(name)
        return found

    async def run(self, tables: Sequence[str] | None) -> None:
        run = RunReport("sync")
        self.names = await resolve_tables(self.source, tables, run)
        self.report.warnings = run.warnings
        present = set(await self.target.table_names())
        missing = [n for n in self.names if n not in present]
        if self.report.dry_run:
            self.report.created_tables = missing
            async with self.target.snapshot():  # for a target scanned here (in memory)
                await self._compare(missing, write=False)
            return
        await self._write_atomically(missing)

    async def _write_atomically(self, missing: list[str]) -> None:
        # As in the load path: where DDL is transactional, missing tables are created inside the
        # transaction; MySQL commits DDL implicitly, so there they come first and go again on failure.
        inside = self.target.capabilities.transactional_ddl
        created = [] if inside else (await ensure_tables(self.target, missing)).created
        try:
            async with self.target.transaction(foreign_keys=False):
                if inside:
                    created = (await ensure_tables(self.target, missing, own_transaction=False)).created
                await self._compare(created, write=True)
        except BaseException:
            for keeper in self._keepers_to_commit.values():
                keeper.discard()
            if created and not inside:
                with contextlib.suppress(Exception):  # never hide the error that got us here
                    await shielded(drop_tables(self.target, created))
            raise
        self.report.created_tables = created
        for name, keeper in self._keepers_to_commit.items():  # the target holds what they describe now
            keeper.units = self._units.get(name)
            keeper.commit()

    async def _compare(self, absent: list[str], *, write: bool) -> None:
        """Scan both sides, classify the keys, and (``write``) apply the difference."""
        present = [n for n in self.names if n not in absent]
        memories = await self._memories(present)
        with tempfile.TemporaryDirectory(prefix="memoria-sync-") as folder:  # mkdtemp: 0700
            spools = Path(folder)
            keepers = self._keepers(write)
            try:
                changes = Changes(spools / "changes")
                counts, rows = await self._classify(spools / "first", self.names, present, memories, keepers, changes)
                if stale := self._stale(memories, counts, rows):
                    await self._classify_again(spools, stale, memories, keepers, changes, counts)
                await _Resolver(self, changes, keepers).resolve(counts)
                self._count(rows, counts, memories)
                if write:
                    await _Writer(self, changes, keepers).apply([n for n in self.names if self.report.tables[n].changed])
            except BaseException:
                for keeper in keepers.values():
                    keeper.discard()
                raise
            self._keepers_to_commit = keepers

    async def _classify(self, folder: Path, names: list[str], present: list[str], memories: dict[str, TableMemory],
                        keepers: dict[str, MemoryWriter], changes: Changes) -> tuple[dict[str, Counts], dict[str, int]]:
        """One scan of both sides and the classification of ``names``; returns the counts and the
        source's row counts. Notes the tables the target holds no row of (``whole``)."""
        folder.mkdir(mode=0o700)
        fresh = [n for n in present if n not in memories]
        source = Scan(names, fresh, Spool(folder / "source"), Spool(folder / "source-digests"))
        target = Scan(present, fresh, Spool(folder / "target"), Spool(folder / "target-digests"))
        sources, target = await self._scan_both(source, target, memories)
        counts = await anyio.to_thread.run_sync(compare, sources, target, names, memories, keepers, changes)
        rows: dict[str, int] = {}
        for one in sources:
            for name, count in one.prints.rows.items():
                rows[name] = rows.get(name, 0) + count
        self.source_scans = sources
        self.whole |= {n for n in names if rows.get(n, 0) and not target.prints.rows.get(n, 0)}
        self.spools = folder
        return counts, rows

    def _stale(self, memories: dict[str, TableMemory], counts: dict[str, Counts], rows: dict[str, int]) -> list[str]:
        """Tables where most rows moved since the memory was taken (a table rewritten, VACUUM FULL):
        reading them by key would cost more than scanning both sides once more."""
        return [n for n in memories if counts[n].suspect > max(STALE_MIN_ROWS, rows.get(n, 0) // 4)]

    async def _classify_again(self, spools: Path, stale: list[str], memories: dict[str, TableMemory],
                              keepers: dict[str, MemoryWriter], changes: Changes, counts: dict[str, Counts]) -> None:
        """Classify the ``stale`` tables once more, by canonical digests as without a memory."""
        for name in stale:
            del memories[name]
            if name in keepers:
                keepers[name].discard()
                keepers[name] = self._keeper(name)
        again = Changes(spools / "again")
        counts.update((await self._classify(spools / "again-scan", stale, stale, {}, keepers, again))[0])
        changes.replace(again, stale)

    async def _memories(self, names: list[str]) -> dict[str, TableMemory]:
        """The memory of each table that has one for this pair and these columns."""
        self._signatures = {name: signature(await self._taken_over(self.source, name),
                                            await self._taken_over(self.target, name)) for name in self.names}
        found = {name: load(self._folder, name, self._signatures[name]) for name in names}
        return {name: memory for name, memory in found.items() if memory is not None}

    def _keepers(self, write: bool) -> dict[str, MemoryWriter]:
        if not write or self._folder is None:
            return {}
        sweep(self._folder)
        return {name: self._keeper(name) for name in self.names}

    def _keeper(self, name: str) -> MemoryWriter:
        assert self._folder is not None
        return MemoryWriter(self._folder, name, self._signatures[name])

    async def _scan_both(self, source: Scan, target: Scan,
                         memories: dict[str, TableMemory]) -> tuple[list[Scan], Scan]:
        """Both sides at once; returns the source's scans and the target's. The target is read in a
        worker process (on its own connection, before this one writes anything), unless it lives in
        this process, and only where it does not hold exactly what the memory says; the source's
        fingerprints are shared with the helper process, if there is one."""
        sources = [source]

        async def scan_target() -> None:
            nonlocal target
            as_remembered = await self._target_as_remembered(memories)
            target.printed = [name for name in target.printed if name not in as_remembered]
            if self.target.url.is_memory or not (target.printed or target.digested):
                await scan(self.target, target)  # here: a database in this process, or nothing left to read
            else:
                target = await scan_in_worker(self.report.target, target)
            target.prints.rows.update(as_remembered)

        async def scan_helped() -> None:
            assert self.helper is not None
            sources.append(await self.helper.scan(helped))

        async def scan_source() -> None:
            changes: dict[str, StorageChanges] = {}
            looked = anyio.Event()

            async def look() -> None:  # at the storage, while the scan lists the keys
                changes.update(await self._storage_changes(source.printed, memories))
                looked.set()

            async def storage() -> dict[str, StorageChanges]:
                await looked.wait()
                return changes

            async with anyio.create_task_group() as group:
                group.start_soon(look)
                await scan(self.source, source, storage)

        source.by_storage = [name for name in source.printed if name in memories and memories[name].units is not None]
        stages = [scan_source, scan_target]
        # Shared with the helper: the tables whose rows will all be read (no storage remembered).
        shared = [name for name in source.printed if name not in memories or memories[name].units is None]
        if self.helper is not None and shared:
            source.share, source.shared = (0, 2), shared
            helped = Scan(shared, [], Spool(_beside(source.prints.path, "helped")),
                          Spool(_beside(source.digests.path, "helped")), share=(1, 2))
            stages.append(scan_helped)
        with fewer_collections():
            await run_stages(*stages)
        return sources, target

    async def _storage_changes(self, names: list[str], memories: dict[str, TableMemory]) -> dict[str, StorageChanges]:
        """The source's storage in this snapshot, noted for the next memories; returns, for the tables
        whose memory knows the storage it was taken over, where their rows changed since."""
        asked = {name: memories[name].units if name in memories else None for name in names if name not in self._units}
        found = (await self.source.storage_changes(asked) if asked else None) or {}
        self._units.update((name, change.units) for name, change in found.items())
        return {name: change for name, change in found.items() if change.changed is not None}

    async def _taken_over(self, conn: Connection, name: str) -> tuple[str, list[tuple[str, str, str]]]:
        """What one side's fingerprints of ``name`` depend on: their scope and the columns."""
        columns = [(c.name, c.type.value, c.declared_type) for c in await self.columns(conn, name)]
        return await conn.fingerprint_scope(name) if columns else "", columns  # no columns: no such table

    async def _target_as_remembered(self, memories: dict[str, TableMemory]) -> dict[str, int]:
        """The tables whose target rows are exactly the remembered (key, print) pairs, by a summary
        the server computes (a staging target nobody writes to), with their row counts: their
        prints need not be read."""
        found = {}
        for name, memory in memories.items():
            summary = await self.target.fingerprint_summary(name, _primary_key(name), await self.columns(self.target, name))
            if summary is not None and summary == memory.target_summary:
                memory.target_unchanged = True
                found[name] = summary[0]
        return found

    def _count(self, rows: dict[str, int], counts: dict[str, Counts], memories: dict[str, TableMemory]) -> None:
        for name in self.names:
            found = counts.get(name, Counts())
            entry = self.report.table(name)
            entry.inserted, entry.updated, entry.deleted = found.inserted, found.updated, found.deleted
            entry.unchanged = rows.get(name, 0) - entry.inserted - entry.updated
            entry.remembered = name in memories
            entry.compared = found.suspect if entry.remembered else rows.get(name, 0) - entry.inserted
        if self.on_counts:
            self.on_counts({n: t.inserted + t.updated for n, t in self.report.tables.items() if t.changed})


class _Writer:
    """Applies the classified changes inside the target transaction the caller holds."""

    def __init__(self, job: _Sync, changes: Changes, keepers: dict[str, MemoryWriter]) -> None:
        self.job, self.changes, self.keepers = job, changes, keepers
        self.source, self.target = job.source, job.target

    async def apply(self, names: list[str]) -> None:
        live = await live_tables(self.target)
        self._refuse_cascades(names)
        with self.changes.open() as file:
            for name in delete_order(names):
                await self._delete(name, file)
            plans = {name: ImportPlan(name, live[name], self.target.capabilities, self.job.report.warnings.append)
                     for name in names}
            for name in insert_order(names):
                await self._insert(name, plans[name], file)
            self._settle_losses(plans)
            await self._check_foreign_keys(names, live, file)

    async def _check_foreign_keys(self, names: list[str], live: Live, file: IO[bytes]) -> None:
        """The end state's foreign keys, where this sync could have broken them: the references of
        the rows it wrote, and the references to the keys it removed — work that grows with the
        difference. A table written whole, and an FK to a column other than the parent's key, are
        checked whole (``load.check_foreign_keys``)."""
        whole, report = set(), self.job.report.tables
        for child, fk in _catalogue_foreign_keys(live):
            # Tables this sync did not compare (only the target has them) changed by nothing.
            mine, parent = report.get(child) or TableSync(child), report.get(fk.parent) or TableSync(fk.parent)
            arrived, removed = mine.inserted + mine.updated, parent.deleted + parent.updated
            if (child in self.job.whole or _many(arrived + removed, mine)
                    or (fk.parent in names and fk.parent_columns[0] != _primary_key(fk.parent))):
                whole |= {child, fk.parent}  # one pass over the table costs less than so many lookups
                continue
            if child in names:
                for keys in self.changes.arrived(file, child):
                    await self._dangling(child, fk, _primary_key(child), _encoded_keys(self.target, child, keys))
            if fk.parent in names and parent.deleted:  # an updated parent is back under its key
                written = {key for keys in self.changes.arrived(file, fk.parent) for key in keys}
                for keys in self.changes.read(file, (fk.parent, REMOVE)):
                    if gone := [key for key in keys if key not in written]:
                        await self._dangling(child, fk, fk.columns[0], _encoded_keys(self.target, fk.parent, gone))
        if whole:
            await check_foreign_keys(self.target, sorted(whole), live)

    async def _dangling(self, child: str, fk: ForeignKey, where: str, keys: list[Key]) -> None:
        q, caps = self.target.capabilities.quote, self.target.capabilities
        col, pcol = fk.columns[0], fk.parent_columns[0]
        rows = await self.target.fetch(
            f"SELECT c.{q(col)} FROM {q(child)} c WHERE c.{q(where)} IN ({caps.placeholders(len(keys))}) "
            f"AND c.{q(col)} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {q(fk.parent)} p "
            f"WHERE p.{q(pcol)} = c.{q(col)}) LIMIT 1", *keys)
        if rows:
            raise IntegrityFailure(f"table {child}, column {col}: value {rows[0][0]!r} has no row in "
                                   f"{fk.parent}.{pcol}; nothing was changed")

    def _refuse_cascades(self, names: list[str]) -> None:
        """Where FK checks could only be deferred (not switched off), removing a parent row —
        even to write it back changed — would cascade into its children: refuse, change nothing."""
        if not self.target.deferred_foreign_keys:
            return
        report = self.job.report.tables
        parents = [n for n in names if report[n].updated + report[n].deleted and _has_children(n)]
        if parents:
            raise IntegrityFailure(
                f"--sync would update or delete rows of {', '.join(parents)}, and this PostgreSQL user may not "
                "switch FK triggers off (GRANT SET ON PARAMETER session_replication_role), so the deletes "
                "would cascade into their children; nothing was changed")

    async def _delete(self, name: str, file: IO[bytes]) -> None:
        key = _primary_key(name)
        q, caps = self.target.capabilities.quote, self.target.capabilities
        for keys in self.changes.read(file, (name, REMOVE)):
            await self.target.execute(f"DELETE FROM {q(name)} WHERE {q(key)} IN ({caps.placeholders(len(keys))})",
                                      *_encoded_keys(self.target, name, keys))

    async def _insert(self, name: str, plan: ImportPlan, file: IO[bytes]) -> None:
        source_plan = export_plan(name, await self.job.columns(self.source, name), self.source.capabilities)
        if name in self.job.whole:
            await self._copy_whole(name, plan, source_plan)
        else:
            await self._insert_by_key(name, plan, source_plan, file)
        if plan.autoincrement:
            await self.target.reset_sequence(name, plan.autoincrement)

    async def _copy_whole(self, name: str, plan: ImportPlan, source_plan: ExportPlan) -> None:
        """A table the target holds no row of: read whole, as ``copy`` does (no reads by key), then
        remembered by one fingerprint scan of what was written, joined with the source's by key."""
        order = [_primary_key(name)] if self.target.capabilities.clustered_by_key else []
        send, receive = channel()

        async def read() -> None:  # reading and converting overlaps the target's writing
            async with send:
                async for raw in self.source.read(name, source_plan.layout.columns, batch_rows=WHOLE_ROWS,
                                                  order_by=order):
                    rows = source_plan.decode(raw)
                    await send.send((plan.from_canonical(source_plan.layout, rows), len(rows), approximate_bytes(rows)))

        async def write() -> None:
            async with receive:
                async for encoded, count, size in receive:
                    await self.target.write(name, plan.columns, encoded)
                    if self.job.on_batch:
                        self.job.on_batch(name, count, size)

        await run_stages(read, write)
        if name in self.keepers:
            folder = self.job.spools
            written = Scan([name], [], Spool(folder / f"written-{name}"), Spool(folder / f"written-{name}-digests"))
            await scan(self.target, written)
            for part, chunk in joined(self.job.source_scans, written, name):
                self.keepers[name].add_chunk(part, chunk)

    async def _insert_by_key(self, name: str, plan: ImportPlan, source_plan: ExportPlan, file: IO[bytes]) -> None:
        for keys in self.changes.read(file, (name, ARRIVE)):
            rows = await _rows_by_key(self.source, source_plan, keys)
            if len(rows) != len(keys):
                raise InternalError(f"{name}: {len(keys)} keys read from the source snapshot found {len(rows)} "
                                    "rows inside the same snapshot; nothing was changed")
            await self._write(name, plan, source_plan, keys, rows)
        for keys, rows, prints in self.changes.read(file, (name, READY)):  # read by the comparison already
            await self._write(name, plan, source_plan, keys, rows, dict(zip(keys, prints)))

    async def _write(self, name: str, plan: ImportPlan, source_plan: ExportPlan, keys: list[Key], rows: list[Row],
                     source_prints: dict[Key, bytes] | None = None) -> None:
        await self.target.write(name, plan.columns, plan.from_canonical(source_plan.layout, rows))
        if name in self.keepers:
            await self._remember_written(name, keys, self.keepers[name], source_prints)
        if self.job.on_batch:
            self.job.on_batch(name, len(rows), approximate_bytes(rows))

    async def _remember_written(self, name: str, keys: list[Key], keeper: MemoryWriter,
                                ours: dict[Key, bytes] | None = None) -> None:
        """Remember rows just written: the source's prints (same snapshot; ``ours`` where the scan had
        them) and the target's (own transaction)."""
        if ours is None:
            ours = await _prints_by_key(self.source, name, await self.job.columns(self.source, name), keys)
        theirs = await _prints_by_key(self.target, name, await self.job.columns(self.target, name), keys)
        kept = [key for key in keys if key in ours and key in theirs]
        keeper.add(kept, [ours[k] for k in kept], [theirs[k] for k in kept])

    def _settle_losses(self, plans: dict[str, ImportPlan]) -> None:
        """As ``copy``: refuse values a target column would store changed, unless ``allow_lossy``."""
        lost = [(name, loss) for name, plan in plans.items() for loss in plan.losses if loss.count]
        for name, loss in lost:
            if not self.job.allow_lossy:
                raise InputError(f"the target column ({loss.target_type}) would store {loss.describe()} changed; "
                                 "nothing was changed. Widen the columns or pass --allow-lossy",
                                 table=name, column=loss.column)
            self.job.report.warnings.append(f"{name}.{loss.column} ({loss.target_type}): stored "
                                            f"{loss.describe()} changed (--allow-lossy)")


class _Resolver:
    """Compares the ``SUSPECT`` keys (rows that moved on either side since the memory was taken) in
    full: read by key from both sides, canonical digests compared. Equal rows are remembered with
    their current prints; the others become updates (``REMOVE``, and ``READY`` with the source rows
    just read, so that the writer does not read them again)."""

    def __init__(self, job: _Sync, changes: Changes, keepers: dict[str, MemoryWriter]) -> None:
        self.job, self.changes, self.keepers = job, changes, keepers

    async def resolve(self, counts: dict[str, Counts]) -> None:
        names = [n for n in self.job.names if n in counts and counts[n].suspect]
        if not names:
            return
        with self.changes.open() as file, self.changes.append() as out:
            for name in names:
                plans = [export_plan(name, await self.job.columns(conn, name), conn.capabilities)
                         for conn in (self.job.source, self.job.target)]
                for batch in list(self.changes.read(file, (name, SUSPECT))):
                    differing = await self._differing(plans, batch, self.keepers.get(name))
                    counts[name].updated += len(differing)
                    if differing:
                        self.changes.write(out, (name, REMOVE), [key for key, _, _ in differing])
                        self.changes.write(out, (name, READY), tuple(map(list, zip(*differing))))

    async def _differing(self, plans: list[ExportPlan], batch: list[tuple[Key, bytes, bytes]],
                         keeper: MemoryWriter | None) -> list[tuple[Key, Row, bytes]]:
        """The batch's rows that differ: (key, source row, source print)."""
        keys = [key for key, _, _ in batch]
        ours, theirs = [await _digested_by_key(conn, plan, keys)
                        for conn, plan in zip((self.job.source, self.job.target), plans)]
        missing = [key for key in keys if key not in ours]
        if missing:
            raise InternalError(f"{plans[0].layout.name}: key {missing[0]!r:.60} read from the source snapshot has no "
                                "row inside the same snapshot; nothing was changed")
        equal = [(key, mine, other) for key, mine, other in batch if ours[key][1] == theirs.get(key, (None, None))[1]]
        if keeper is not None and equal:
            keeper.add(*(list(column) for column in zip(*equal)))
        same = {key for key, _, _ in equal}
        return [(key, ours[key][0], mine) for key, mine, _ in batch if key not in same]


async def _digested_by_key(conn: Connection, plan: ExportPlan, keys: list[Key]) -> dict[Key, tuple[Row, bytes]]:
    """The canonical rows of ``keys`` read on ``conn``, with their digests, by key."""
    rows = await _rows_by_key(conn, plan, keys)
    columns = plan.layout.columns
    key_at = columns.index(_primary_key(plan.layout.name))
    return {row[key_at]: (row, digest) for row, digest in zip(rows, row_digests(columns, rows))}


async def _prints_by_key(conn: Connection, name: str, columns: list[LiveColumn], keys: list[Key]) -> dict[Key, bytes]:
    found: dict[Key, bytes] = {}
    async for batch_keys, prints in conn.fingerprints(name, _primary_key(name), columns, batch_rows=len(keys), keys=keys):
        found.update(zip(batch_keys, prints))
    return found


def _many(keys: int, table: TableSync) -> bool:
    """Are ``keys`` lookups into ``table`` more than a scan of it? (an index probe costs a few rows)"""
    return keys > min(FK_LOOKUPS_MAX, max(FK_LOOKUPS, (table.unchanged + table.inserted + table.updated) // 20))


def _catalogue_foreign_keys(live: Live) -> list[tuple[str, ForeignKey]]:
    """(child, FK) for every single-column catalogue FK whose two tables and columns are live."""
    found = []
    for child in live:
        table = get_table(child)
        names = {c.name for c in live[child]}
        for fk in table.foreign_keys if table else ():
            if fk.parent in live and len(fk.columns) == 1 and fk.columns[0] in names:
                found.append((child, fk))
    return found


async def _rows_by_key(conn: Connection, plan: ExportPlan, keys: list[Any]) -> list[Row]:
    """The rows of ``keys``, canonical, read on ``conn`` (inside its snapshot)."""
    name = plan.layout.name
    q, caps = conn.capabilities.quote, conn.capabilities
    columns = ", ".join(q(c) for c in plan.layout.columns)
    raw = await conn.fetch(f"SELECT {columns} FROM {q(name)} WHERE {q(_primary_key(name))} "
                           f"IN ({caps.placeholders(len(keys))})", *_encoded_keys(conn, name, keys))
    return plan.decode(raw)


def _encoded_keys(conn: Connection, name: str, keys: list[Any]) -> list[Any]:
    """Key values as ``conn``'s driver takes them (no backend encodes text or integer keys today)."""
    table = get_table(name)
    column = table.column(_primary_key(name)) if table else None
    encode: Callable[[Any], Any] | None = conn.capabilities.encoders.get(column.type) if column else None
    return [encode(k) for k in keys] if encode else keys


def _primary_key(name: str) -> str:
    table = get_table(name)
    assert table is not None and len(table.primary_key) == 1
    return table.primary_key[0]


def _has_children(name: str) -> bool:
    return any(name in table.parents for table in TABLES.values())
