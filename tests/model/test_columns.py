"""``convert_column`` gives exactly what its decoder or encoder gives value by value, or fails as that does."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Callable, Sequence

import pytest
from hypothesis import given, settings, strategies as st

from memoria_stream.drivers.mysql import CAPABILITIES as MYSQL
from memoria_stream.drivers.postgres import CAPABILITIES as POSTGRES
from memoria_stream.drivers.sqlite import CAPABILITIES as SQLITE
from memoria_stream.model.columns import convert_column
from memoria_stream.model.types import JSON_NULL, ColumnType
from memoria_stream.model.values import INPUT_COERCERS, json_as_text, unchanged

CONVERTERS = sorted({c for caps in (SQLITE, POSTGRES, MYSQL) for c in (*caps.decoders.values(), *caps.encoders.values())}
                    | {json_as_text, unchanged, *INPUT_COERCERS.values()}, key=lambda c: getattr(c, "__name__", repr(c)))


def one_by_one(decode: Callable[[Any], Any], values: Sequence[Any]) -> list[Any]:
    return [None if v is None else decode(v) for v in values]


def typed(values: Sequence[Any]) -> list[tuple[type, Any]]:
    """Values with their types: ``1 == 1.0 == True``, but an export must not change one for another."""
    return [(type(v), v) for v in values]


def assert_same(decode: Callable[[Any], Any], values: Sequence[Any]) -> None:
    try:
        expected = one_by_one(decode, values)
    except Exception as exc:  # an encoder given a value no driver hands it fails too, alike
        with pytest.raises(type(exc)):
            convert_column(decode, values)
        return
    got = list(convert_column(decode, values))
    assert typed(got) == typed(expected)
    assert [v is JSON_NULL for v in got] == [v is JSON_NULL for v in expected]


TIMESTAMPS = st.sampled_from([
    "2024-08-27 03:45:04.297277", "2024-08-27T03:45:04", "2024-08-27 03:45:04Z", "2024-08-27T03:45:04+02:00",
    " 2024-08-27 03:45:04", "2024-08-27 03:45:04 ", "2024-08-27", "20240827T034504", "not a date", "",
])
JSON_TEXTS = st.sampled_from(['{"a": [1, 2.5, "\\u00e9"]}', "null", "[]", "0.1", '"text"', "{bad", "", "true"])
DOCUMENTS = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
                         lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
                         max_leaves=6)
VALUES = st.one_of(st.none(), TIMESTAMPS, JSON_TEXTS, st.integers(-3, 3), st.floats(allow_nan=False),
                   st.booleans(), st.binary(max_size=4), st.datetimes(), st.text(max_size=5), st.just(JSON_NULL),
                   DOCUMENTS)


@pytest.mark.parametrize("decode", CONVERTERS, ids=lambda d: getattr(d, "__name__", repr(d)))
@settings(max_examples=300, deadline=None)
@given(values=st.lists(VALUES, max_size=8))
def test_any_column_decodes_as_value_by_value(decode: Callable[[Any], Any], values: list[Any]) -> None:
    assert_same(decode, values)


@pytest.mark.parametrize("decode", CONVERTERS, ids=lambda d: getattr(d, "__name__", repr(d)))
@settings(max_examples=200, deadline=None)
@given(values=st.lists(st.one_of(st.none(), TIMESTAMPS, JSON_TEXTS), max_size=8))
def test_text_columns_decode_as_value_by_value(decode: Callable[[Any], Any], values: list[Any]) -> None:
    """The fast forms take columns of text (and NULL): drawn often here, not only by chance."""
    assert_same(decode, values)


def test_the_usual_columns_take_the_fast_forms() -> None:
    stamps = ("2024-08-27 03:45:04.297277", None, "2023-10-17 03:24:12")
    assert convert_column(SQLITE.decoders[ColumnType.TIMESTAMP], stamps) == [
        datetime(2024, 8, 27, 3, 45, 4, 297277), None, datetime(2023, 10, 17, 3, 24, 12)]
    parsed = convert_column(SQLITE.decoders[ColumnType.JSON], ('{"a": 1}', None, "null", "[2]"))
    assert parsed == [{"a": 1}, None, JSON_NULL, [2]] and parsed[2] is JSON_NULL
    floats = (0.5, None, 1e300)
    assert convert_column(float, floats) is floats  # already decoded: not even copied
    texts = ('{"a": 1}', None)
    assert convert_column(json_as_text, texts) is texts


def test_a_bad_value_fails_as_its_decoder_does() -> None:
    with pytest.raises(ValueError):
        convert_column(SQLITE.decoders[ColumnType.JSON], ('{"a": 1}', "{bad"))
    with pytest.raises(ValueError):
        convert_column(SQLITE.decoders[ColumnType.TIMESTAMP], ("2024-08-27", "yesterday"))
