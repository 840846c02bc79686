"""``backup_guard``: back up, run a block, and put the database back when the block changed it.

Before the block: a backup of the whole database, then the size and the row count of every table.
After the block (also when it raised or was cancelled; that part is shielded): size and counts
again. A count that differs in a table not in ``ignore_tables``, a table that appeared or vanished,
or (with ``check_size``) a different size is a mismatch, and a mismatch restores the backup unless
``auto_restore_on_mismatch=False``.

The size is the space the data *uses* (``Connection.database_size``), chosen so that neither the
guard's own work nor harmless background activity moves it: SQLite ``(page_count - freelist_count) * page_size`` (pages freed by a
delete do not count; the backup API only reads the source); PostgreSQL the main fork of every user
table, index, sequence and their TOAST tables (not the free-space and visibility maps autovacuum
creates, not the catalogues' statistics); MySQL/MariaDB the InnoDB tablespace files of the database
(they grow in extents, not per row, and unlike ``data_length`` they are not a statistic that is
recalculated in the background), plus ``data_length + index_length`` of non-InnoDB tables.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import AbstractSet, AsyncIterator, Iterable, Iterator

import anyio
from anyio.from_thread import start_blocking_portal

from memoria_stream.backup.actions import create_backup, restore_backup
from memoria_stream.drivers import connect
from memoria_stream.drivers.base import count_rows
from memoria_stream.errors import DatabaseError
from memoria_stream.drivers.urls import DatabaseURL, parse_url

__all__ = ["GuardReport", "backup_guard", "backup_guard_sync"]

log = logging.getLogger(__name__)

Counts = dict[str, int]


@dataclass
class GuardReport:
    """What a guard saw and did; complete once the ``async with`` block has been left."""

    url: str  # masked
    backup_path: Path | None = None  # None for an in-memory SQLite database: nothing was guarded
    counts_before: Counts = field(default_factory=dict)
    counts_after: Counts = field(default_factory=dict)
    size_before: int | None = None
    size_after: int | None = None
    mismatches: dict[str, tuple[int | None, int | None]] = field(default_factory=dict)  # table -> before, after
    size_changed: bool = False
    restored: bool = False
    restore_error: BaseException | None = None

    @property
    def changed(self) -> bool:
        """Whether the check after the block found a mismatch (in counts, or in size when checked)."""
        return bool(self.mismatches) or self.size_changed


@contextlib.asynccontextmanager
async def backup_guard(
    url: str | DatabaseURL,
    ignore_tables: Iterable[str] | None = None,
    *,
    auto_restore_on_mismatch: bool = True,
    check_size: bool = True,
    backup_dir: str | os.PathLike[str] | None = None,
    keep: int | None = None,
) -> AsyncIterator[GuardReport]:
    """``async with backup_guard(url) as guard:`` restores the database when the block changed it.

    The block's own exception is always re-raised. If a restore fails as well, the block's exception
    carries a note naming the restore error (also in ``guard.restore_error``); when the block
    succeeded, the restore failure is raised as a ``DatabaseError``. A failing backup raises before
    the block runs. ``backup_dir`` defaults to ``backups/`` in the working directory; with ``keep=N``
    only the N newest guard backups of this database are kept (by default, as in Memoria, all are).
    """
    parsed = parse_url(url) if isinstance(url, str) else url
    report = GuardReport(parsed.masked())
    report.backup_path = await create_backup(parsed, backup_dir, keep=keep, kind="guard")
    if report.backup_path is not None:
        report.counts_before, report.size_before = await _measure(parsed)
    failure: BaseException | None = None
    try:
        yield report
    except BaseException as exc:  # cancellation too: the check below still runs (shielded)
        failure = exc
    if report.backup_path is not None:
        with anyio.CancelScope(shield=True):
            await _after(report, parsed, frozenset(ignore_tables or ()), check_size, auto_restore_on_mismatch,
                         failure)
    if failure is not None:
        raise failure


async def _after(report: GuardReport, url: DatabaseURL, ignored: AbstractSet[str], check_size: bool,
                 auto_restore: bool, failure: BaseException | None) -> None:
    try:
        report.counts_after, report.size_after = await _measure(url)
    except Exception as exc:
        if failure is None:
            raise
        _note(failure, f"backup_guard: could not check the database afterwards: {exc}")
        return
    _compare(report, ignored, check_size)
    if not report.changed:
        log.info("backup_guard: %s unchanged", report.url)
        return
    log.warning("backup_guard: %s changed: %s", report.url, _describe(report))
    if auto_restore:
        await _restore(report, url, ignored, failure)


def _compare(report: GuardReport, ignored: AbstractSet[str], check_size: bool) -> None:
    before, after = report.counts_before, report.counts_after
    names = sorted((before.keys() | after.keys()) - ignored)
    report.mismatches = {n: (before.get(n), after.get(n)) for n in names if before.get(n) != after.get(n)}
    report.size_changed = check_size and report.size_before != report.size_after


def _describe(report: GuardReport) -> str:
    parts = [f"{name} {b} -> {a}" for name, (b, a) in report.mismatches.items()]
    if report.size_changed:
        parts.append(f"size {report.size_before} -> {report.size_after}")
    return ", ".join(parts)


async def _restore(report: GuardReport, url: DatabaseURL, ignored: AbstractSet[str],
                   failure: BaseException | None) -> None:
    assert report.backup_path is not None
    try:
        await restore_backup(url, report.backup_path)
        await _drop_new_tables(url, report.counts_after.keys() - report.counts_before.keys() - ignored)
    except Exception as exc:
        report.restore_error = exc
        message = f"backup_guard: restoring {report.backup_path} into {report.url} failed: {exc}"
        if failure is None:
            raise DatabaseError(message) from exc
        _note(failure, message)  # the block's error stays the one raised; the restore error rides along
        return
    report.restored = True
    log.warning("backup_guard: restored %s from %s", report.url, report.backup_path)


def _note(exc: BaseException, text: str) -> None:
    if hasattr(exc, "add_note"):
        exc.add_note(text)
    else:  # Python 3.10: no add_note, but __notes__ is where 3.11+ looks
        setattr(exc, "__notes__", [*getattr(exc, "__notes__", []), text])


async def _drop_new_tables(url: DatabaseURL, names: AbstractSet[str]) -> None:
    # A dump replaces what it holds; tables created during the block are not in it. (A file
    # database's restore replaces the whole file, so there they are gone already.)
    if not names or url.is_file:
        return
    async with connect(url) as conn:
        q, suffix = conn.capabilities.quote, conn.capabilities.drop_table_suffix
        async with contextlib.AsyncExitStack() as stack:
            if not suffix:  # no CASCADE: a table others reference goes with FK checks off
                await stack.enter_async_context(conn.transaction(foreign_keys=False))
            for name in sorted(names):
                await conn.execute(f"DROP TABLE IF EXISTS {q(name)}{suffix}")


# -- measuring ------------------------------------------------------------------------------------


async def _measure(url: DatabaseURL) -> tuple[Counts, int]:
    async with connect(url) as conn:
        counts = {name: await count_rows(conn, name) for name in await conn.table_names()}
        return counts, await conn.database_size()


# -- for plain scripts ----------------------------------------------------------------------------


@contextlib.contextmanager
def backup_guard_sync(
    url: str | DatabaseURL,
    ignore_tables: Iterable[str] | None = None,
    *,
    auto_restore_on_mismatch: bool = True,
    check_size: bool = True,
    backup_dir: str | os.PathLike[str] | None = None,
    keep: int | None = None,
    backend: str = "asyncio",
) -> Iterator[GuardReport]:
    """``with backup_guard_sync(url) as guard:`` — ``backup_guard`` for synchronous code.

    The guard runs on an event loop in a helper thread (an anyio blocking portal); the block runs in
    the calling thread. Do not call it from inside a running event loop's thread with blocking work.
    """
    guard = backup_guard(url, ignore_tables, auto_restore_on_mismatch=auto_restore_on_mismatch,
                         check_size=check_size, backup_dir=backup_dir, keep=keep)
    with start_blocking_portal(backend) as portal, portal.wrap_async_context_manager(guard) as report:
        yield report
