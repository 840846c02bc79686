"""The batch digest (column at a time) is exactly the sum of the per-row digests ``verify`` uses."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from memoria_stream.model.types import JSON_NULL
from memoria_stream.transfer.digests import MODULUS, digest_sum, row_digest

_json = st.recursive(st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1) | st.floats(allow_nan=False)
                     | st.sampled_from([0.0, -0.0]) | st.text(max_size=5),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
                     max_leaves=6)
_naive = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30))
_aware = _naive.map(lambda d: d.replace(tzinfo=timezone(timedelta(hours=3))))
# One strategy per column kind: a column holds one kind of value, or (the last) anything at all.
_kinds = [st.text(), st.integers(-2**63, 2**63 - 1), st.integers(), st.booleans(), st.floats(allow_nan=False),
          st.sampled_from([0.0, -0.0, 1.0, 1]), _naive, _aware, _json, st.just(JSON_NULL), st.binary(max_size=4)]
_anything = st.one_of(*_kinds)


@st.composite
def batches(draw: Any) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
    kinds = draw(st.lists(st.sampled_from(range(len(_kinds) + 1)), min_size=1, max_size=5))
    strategies = [_anything if k == len(_kinds) else _kinds[k] for k in kinds]
    rows = draw(st.lists(st.tuples(*[st.none() | s for s in strategies]), min_size=1, max_size=8))
    return tuple(f"c{i}" for i in range(len(kinds))), rows


@settings(max_examples=400, deadline=None)
@given(batches())
def test_batch_digest_equals_the_sum_of_row_digests(batch: tuple[tuple[str, ...], list[tuple[Any, ...]]]) -> None:
    columns, rows = batch
    expected = sum(int.from_bytes(row_digest(columns, row), "big") for row in rows) % MODULUS
    assert digest_sum(columns, rows) == expected


def test_a_changed_value_changes_the_digest() -> None:
    columns = ("id", "at", "data")
    row = (1, datetime(2024, 1, 2, 3, 4, 5), {"k": [1.5, "x"]})
    for changed in [(2, row[1], row[2]), (1, datetime(2024, 1, 2, 3, 4, 6), row[2]), (1, row[1], {"k": [1.5, "y"]}),
                    (1, row[1], JSON_NULL), (1, row[1], None), ("1", row[1], row[2])]:
        assert digest_sum(columns, [changed]) != digest_sum(columns, [row]), changed
