"""Value rules: strict coercion of file input, time zones, JSON null versus SQL NULL."""

from __future__ import annotations

from datetime import datetime

import pytest

from memoria_stream.errors import InputError
from memoria_stream.model.types import JSON_NULL, ColumnType as T
from memoria_stream.model.values import INPUT_COERCERS, json_from_text, json_to_text, parse_bool_flag, parse_timestamp


@pytest.mark.parametrize("text, expected", [
    ("2024-01-02T03:04:05.123456", datetime(2024, 1, 2, 3, 4, 5, 123456)),
    ("2024-01-02 03:04:05", datetime(2024, 1, 2, 3, 4, 5)),
    ("2024-01-02T03:04:05Z", datetime(2024, 1, 2, 3, 4, 5)),
    ("2024-01-02T05:04:05+02:00", datetime(2024, 1, 2, 3, 4, 5)),
    ("2024-01-01T23:30:00-01:00", datetime(2024, 1, 2, 0, 30)),
])
def test_timestamps_become_naive_utc(text: str, expected: datetime) -> None:
    assert parse_timestamp(text) == expected
    assert parse_timestamp(text).tzinfo is None


@pytest.mark.parametrize("value, expected", [
    (True, True), (False, False), ("false", False), ("FALSE", False), ("0", False), ("no", False),
    ("true", True), ("1", True), (1, True), (0, False),
])
def test_booleans_are_strict(value: object, expected: bool) -> None:
    assert INPUT_COERCERS[T.BOOLEAN](value) is expected
    assert parse_bool_flag(value, name="truncate") is expected


@pytest.mark.parametrize("ctype, value", [
    (T.BOOLEAN, "maybe"), (T.BOOLEAN, 2), (T.INTEGER, "1.5"), (T.INTEGER, True), (T.FLOAT, "abc"),
    (T.TIMESTAMP, "yesterday"), (T.TIMESTAMP, 12), (T.TEXT, 5), (T.TEXT, {"a": 1}),
])
def test_wrong_types_are_rejected(ctype: T, value: object) -> None:
    with pytest.raises(ValueError):
        INPUT_COERCERS[ctype](value)


def test_bool_flag_error_is_input_error() -> None:
    with pytest.raises(InputError, match="truncate"):
        parse_bool_flag("perhaps", name="truncate")


def test_numeric_strings_coerce_like_memoria() -> None:
    assert INPUT_COERCERS[T.INTEGER]("7") == 7
    assert INPUT_COERCERS[T.FLOAT]("1.5") == 1.5


def test_json_null_is_not_sql_null() -> None:
    assert json_to_text(JSON_NULL) == "null"
    assert json_from_text("null") is JSON_NULL
    assert json_from_text(42) == 42  # SQLite's JSON affinity hands numbers back as numbers
    assert json_from_text('{"a": [1, null]}') == {"a": [1, None]}
