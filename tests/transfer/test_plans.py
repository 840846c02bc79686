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

# Part of Memoria's agents table: is_agent and metadata have defaults, which a row leaving them out gets.
AGENTS = [LiveColumn("agent_id", T.TEXT, False), LiveColumn("name", T.TEXT, False), LiveColumn("role", T.TEXT, True),
          LiveColumn("is_agent", T.BOOLEAN, False), LiveColumn("metadata", T.JSON, True)]
_TEXT = st.text(st.characters(blacklist_characters="\x00"), max_size=5)  # PostgreSQL refuses NUL: tested elsewhere
_OPTIONAL = {"role": st.none() | _TEXT, "is_agent": st.booleans(),
             "metadata": st.none() | st.dictionaries(_TEXT, st.integers(-3, 3), max_size=2)}


@st.composite
def _file_rows(draw: Callable[..., Any]) -> list[dict[str, Any]]:
    """Rows as a file gives them: the keys always, each other column present or left out per row."""
    rows = []
    for _ in range(draw(st.integers(1, 6))):
        row = {"agent_id": draw(_TEXT), "name": draw(_TEXT)}
        for key in draw(st.lists(st.sampled_from(sorted(_OPTIONAL)), unique=True)):
            row[key] = draw(_OPTIONAL[key])
        rows.append(row)
    return rows


@settings(max_examples=200, deadline=None)
@given(rows=_file_rows())
def test_a_batch_converts_as_its_rows_do_one_by_one(rows: list[dict[str, Any]]) -> None:
    """Whatever columns each row carries, the batch's column-wise path gives the row-by-row result."""
    plan = ImportPlan("agents", AGENTS, POSTGRES, lambda _: None)
    one_by_one = [plan.build(row, line, "agents.ndjson") for line, row in enumerate(rows, 1)]
    batch = RowBatch("agents", rows, 1, lines=list(range(1, len(rows) + 1)))
    assert plan.build_batch(batch, "agents.ndjson") == one_by_one
    if all(row.keys() == rows[0].keys() for row in rows):  # the column-wise path takes it, not the fallback
        assert plan._columnwise(rows) == one_by_one
