"""ImportPlan.from_canonical: rows read from a database, in the reader's column order, come out in
the target's live column order, whether the column-wise path sends them as they came or rebuilds them."""

from __future__ import annotations

from memoria_stream.codecs.base import TableLayout
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
