"""SQLite reads with ``blocking_reads`` (a worker process's connection): the same rows, batch for
batch, as reads through aiosqlite's thread, but read on the caller's own thread."""

from __future__ import annotations

import threading
from pathlib import Path

from memoria_stream.drivers import connect

ROWS = [(i, f"text {i} é ✨" if i % 7 else None, i / 3, bytes([i % 256]) * (i % 5), i * 2**40)
        for i in range(1, 2501)]
COLUMNS = ["id", "note", "ratio", "raw", "big"]


async def _read_all(url: str, blocking_reads: bool) -> tuple[list[list[tuple]], list[list[tuple]], set[int]]:
    threads: set[int] = set()
    async with connect(url, blocking_reads=blocking_reads) as conn:
        def traced(sql: str) -> None:
            if sql.startswith('SELECT "id"'):  # the reads' statements, not row_ranges'
                threads.add(threading.get_ident())

        conn._raw.set_trace_callback(traced)  # type: ignore[attr-defined]
        async with conn.snapshot():
            whole = [list(map(tuple, batch)) async for batch in conn.read("t", COLUMNS, batch_rows=700)]
            ranges = await conn.row_ranges("t", 4)
            assert ranges is not None and len(ranges) == 4
            sliced = [list(map(tuple, batch)) for within in ranges
                      async for batch in conn.read("t", COLUMNS, batch_rows=700, within=within)]
    return whole, sliced, threads


async def test_blocking_reads_are_the_same_rows_read_on_the_callers_thread(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'reads.db'}"
    async with connect(url) as conn:
        await conn.execute('CREATE TABLE t (id INTEGER PRIMARY KEY, note TEXT, ratio FLOAT, raw BLOB, big INTEGER)')
        async with conn.transaction():
            await conn.write("t", COLUMNS, ROWS)

    hopped = await _read_all(url, blocking_reads=False)
    inline = await _read_all(url, blocking_reads=True)

    for whole, sliced, _ in (hopped, inline):
        assert [row for batch in whole for row in batch] == ROWS
        assert [row for batch in sliced for row in batch] == ROWS
    assert inline[0] == hopped[0] and inline[1] == hopped[1]  # batch for batch
    assert len(inline[0]) > 1  # batched by size, not all at once
    assert hopped[2] and threading.get_ident() not in hopped[2]
    assert inline[2] == {threading.get_ident()}
