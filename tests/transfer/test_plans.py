"""ImportPlan.from_canonical: rows read from a database, in the reader's column order, come out in
the target's live column order, whether the column-wise path sends them as they came or rebuilds them."""

from __future__ import annotations

from typing import Any, Callable

from hypothesis import given, settings, strategies as st

from memoria_stream.codecs.base import RowBatch, TableLayout
from memoria_stream.drivers.base import LiveColumn
from memoria_stream.drivers.postgres import CAPABILITIES as POSTGRES
from memoria_stream.model.types import ColumnType as T
from memoria_stream.transfer.plans import ImportPlan

LIVE = [LiveColumn("id", T.TEXT, False), LiveColumn("n", T.INTEGER, True), LiveColumn("note", T.TEXT, True)]
ROWS = [("a", 1, "x"), ("b", None, None), ("c", 3, "z")]


def _plan() -> ImportPlan:
    return ImportPlan("t", LIVE, POSTGRES, lambda _: None)


def test_rows_in_the_target_order_go_on_value_for_value() -> None:
    layout = TableLayout("t", ("id", "n", "note"), (T.TEXT, T.INTEGER, T.TEXT))
    assert _plan().from_canonical(layout, ROWS) == ROWS


def test_rows_in_another_column_order_are_rebuilt_in_the_target_order() -> None:
    layout = TableLayout("t", ("note", "id", "n"), (T.TEXT, T.TEXT, T.INTEGER))
    read = [(note, key, n) for key, n, note in ROWS]
    assert _plan().from_canonical(layout, read) == ROWS


def test_a_column_the_reader_lacks_is_filled_in_its_place() -> None:
    layout = TableLayout("t", ("id", "note"), (T.TEXT, T.TEXT))
    read = [(key, note) for key, _, note in ROWS]
    assert _plan().from_canonical(layout, read) == [(key, None, note) for key, _, note in ROWS]


def test_values_the_driver_encodes_are_rebuilt() -> None:
    live = [LiveColumn("id", T.TEXT, False), LiveColumn("meta", T.JSON, True)]
    layout = TableLayout("t", ("id", "meta"), (T.TEXT, T.JSON))
    rows = [("a", {"k": [1, 2]}), ("b", None)]
    plan = ImportPlan("t", live, POSTGRES, lambda _: None)
    assert plan.from_canonical(layout, rows) == [("a", '{"k":[1,2]}'), ("b", None)]
    # Stored JSON text for a server that parses it itself goes on as stored.
    assert plan.from_canonical(layout, [("a", '{"k": [1, 2]}')], json_text=True) == [("a", '{"k": [1, 2]}')]


# --- ImportPlan.build_batch: a batch of file rows, column by column -------------------------------

_TEXT = st.characters(blacklist_characters="\x00")  # PostgreSQL refuses NUL: another test's subject
_FILE_VALUES = {"id": st.text(_TEXT, min_size=1, max_size=5), "n": st.none() | st.integers(-5, 5),
                "note": st.none() | st.text(_TEXT, max_size=5)}


@st.composite
def _file_rows(draw: Callable[..., Any]) -> list[dict[str, Any]]:
    """Rows as a file gives them: ``id`` always, each other column present or left out per row."""
    rows = []
    for _ in range(draw(st.integers(1, 6))):
        keys = ["id", *draw(st.lists(st.sampled_from(["n", "note"]), unique=True))]
        rows.append({key: draw(_FILE_VALUES[key]) for key in keys})
    return rows


@settings(max_examples=200, deadline=None)
@given(rows=_file_rows())
def test_a_batch_converts_as_its_rows_do_one_by_one(rows: list[dict[str, Any]]) -> None:
    """Whatever columns each row carries, the batch's column-wise path gives the row-by-row result."""
    plan = _plan()
    one_by_one = [plan.build(row, line, "t.ndjson") for line, row in enumerate(rows, 1)]
    batch = RowBatch("t", rows, 1, lines=list(range(1, len(rows) + 1)))
    assert plan.build_batch(batch, "t.ndjson") == one_by_one
    assert plan._columnwise(rows) in (None, one_by_one)
