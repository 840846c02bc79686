"""An import into a target that stores rows in key order (InnoDB) writes each text-keyed table's rows
sorted by key, however the file orders them, through runs spilled to the private spool; elsewhere
rows go in as the file has them. Either way every row read back equals the row written."""

from __future__ import annotations

import ast
import stat
from pathlib import Path
from typing import Any, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memoria_stream.codecs import ndjson
from memoria_stream.drivers import connect
from memoria_stream.model.catalog import get_table
from memoria_stream.model.types import Row
from memoria_stream.transfer import key_order, load
from memoria_stream.transfer.files import export_data, import_data
from memoria_stream.transfer.key_order import KeyOrder, sorted_batches
from memoria_stream.transfer.spool import Spool

from support.dataset import build_dataset, load_dataset
from support.helpers import assert_same, read_all

KEY_CHARACTERS = st.sampled_from("ab\t\n\\\x00é")
rows_strategy = st.lists(st.tuples(st.text(alphabet=KEY_CHARACTERS, max_size=6), st.integers(), st.text(max_size=20)), max_size=120)


class ReprLines:
    """A line writer whose line is the row's repr: it holds no newline byte, and reads back."""

    def encode(self, rows: Sequence[Row]) -> list[bytes]:
        return [repr(row).encode() for row in rows]

    async def write(self, lines: Sequence[bytes]) -> None:
        raise AssertionError("not written here")


@settings(max_examples=60, deadline=None)
@given(rows=rows_strategy, batch=st.integers(1, 9), run_bytes=st.integers(1, 40), as_lines=st.booleans())
def test_every_row_comes_back_once_in_key_order(rows: list[tuple[Any, ...]], batch: int, run_bytes: int,
                                                as_lines: bool) -> None:
    """As rows, or as the lines of a writer (keys with tabs, newlines and backslashes included)."""
    spool = Spool()
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(key_order, "BLOCK_ROWS", 3)
            patch.setattr(key_order, "FAN_IN", 2)  # runs merged into larger runs, several levels deep
            order = KeyOrder(spool, 0, run_bytes=run_bytes, writer=ReprLines() if as_lines else None)
            passed = []  # as the loader does: rows still in key order are written as they come
            for at in range(0, len(rows), batch):
                part = [*rows[at:at + batch]]
                if order.passes(part):
                    passed += part
                else:
                    order.add(part, batch)
            modes = {stat.S_IMODE(p.stat().st_mode) for p in spool.directory.iterdir()} if spool.directory else set()
            held = [row for part, _ in sorted_batches(order) for row in part] if order.rows else []
            if as_lines:
                held = [ast.literal_eval(line.decode()) for line in held]
        assert modes <= {0o600}
        assert [row[0] for row in passed] == sorted(row[0] for row in passed)
        # Lines sort by their key's bytes, which orders keys with control characters apart from
        # Python's order; no matter (only speed depends on it), as long as it is one order.
        order_of = (lambda key: key_order._keyed(key, b"")) if as_lines else (lambda key: key)
        assert [row[0] for row in held] == sorted((row[0] for row in held), key=order_of)
        assert sorted(passed + held) == sorted(rows)  # nothing lost, nothing doubled
        keys = [row[0] for row in rows]
        assert (held == []) == (keys == sorted(keys))  # held back exactly when the input is out of order
        assert not spool.directory or not any(spool.directory.iterdir())  # runs removed once read
    finally:
        spool.remove()


def test_progress_shares_add_up_to_the_input_bytes() -> None:
    spool = Spool()
    try:
        order = KeyOrder(spool, 0, run_bytes=50)
        for i in range(7):
            order.add([(f"k{(i * 37) % 11}-{j}",) for j in range(3)], 17)
        shares = [(len(part), size) for part, size in sorted_batches(order)]
        assert sum(n for n, _ in shares) == 21 and sum(size for _, size in shares) == 7 * 17
        assert {n for n, _ in shares[:-1]} == {3}  # batches as large as those added
    finally:
        spool.remove()


def test_lines_go_in_batches_of_about_line_batch_bytes_of_input(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(key_order, "LINE_BATCH_BYTES", 100)
    spool = Spool()
    try:
        order = KeyOrder(spool, 0, run_bytes=50, writer=ReprLines())
        for i in range(7):
            order.add([(f"k{(i * 37) % 11}-{j}",) for j in range(3)], 17)
        shares = [(len(part), size) for part, size in sorted_batches(order)]
        assert [n for n, _ in shares] == [17, 4]  # 21 rows of 119 bytes: 17 rows hold about 100
        assert sum(size for _, size in shares) == 7 * 17
    finally:
        spool.remove()


async def test_a_file_in_reverse_key_order_is_written_sorted_where_the_target_clusters_by_key(
        db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = {name: list(reversed(rows)) for name, rows in build_dataset().items()}
    source = f"sqlite:///{tmp_path / 'source.db'}"
    async with connect(source) as conn:
        await load_dataset(conn, data)  # stored, and so exported, in reverse key order
    dump = tmp_path / "dump.ndjson"
    await export_data(dump, database_url=source)

    monkeypatch.setattr(ndjson, "BATCH_BYTES", 1)  # one row per batch…
    monkeypatch.setattr(key_order, "RUN_BYTES", 1)  # …spilled as a run of its own
    monkeypatch.setattr(key_order, "FAN_IN", 3)
    written: dict[str, list[Any]] = {}
    as_lines: set[str] = set()  # tables whose sorted rows went as the target's lines
    write = load._Loader._write

    async def recording(self: Any, name: str, rows: list[Any], size: int, writer: Any = None) -> None:
        at = self.plans[name].columns.index(get_table(name).primary_key[0])
        if writer:  # the target's lines (MySQL's LOAD DATA text): the key is the field at its column
            as_lines.add(name)
            written.setdefault(name, []).extend(line.split(b"\t")[at].decode() for line in rows)
        else:
            written.setdefault(name, []).extend(row[at] for row in rows)
        await write(self, name, rows, size, writer)
    monkeypatch.setattr(load._Loader, "_write", recording)

    await import_data(dump, database_url=db_url)
    assert_same(data, await read_all(db_url))
    async with connect(db_url) as conn:
        clustered = conn.capabilities.clustered_by_key
    text_keyed = [n for n in data if len(data[n]) > 1 and key_order.text_key_position(n, list(data[n][0])) is not None]
    assert text_keyed
    for name in text_keyed:
        in_file = [row[get_table(name).primary_key[0]] for row in data[name]]
        assert in_file != sorted(in_file)
        # The first one-row batch is in order by itself and passes; every later one is held and sorted.
        assert written[name] == (in_file[:1] + sorted(in_file[1:]) if clustered else in_file), name
    assert as_lines == (set(text_keyed) if clustered else set())  # MySQL's sorted tables go as lines
