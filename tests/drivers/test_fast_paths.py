"""The speed-ups give the same results as the code they replace: MySQL literals equal pymysql's, and
the column-wise limit checks accept and refuse exactly what the per-value checks do."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from pymysql.converters import escape_item, escape_string

from memoria_stream.drivers.base import LiveColumn
from memoria_stream.drivers.mysql import CAPABILITIES as MYSQL
from memoria_stream.drivers.mysql_literals import _escape_text, column_literals, insert_statements
from memoria_stream.drivers.postgres import CAPABILITIES as POSTGRES
from memoria_stream.transfer.limits import column_check, value_check
from memoria_stream.model.types import ColumnType
from support.dataset import BIG_TEXT, DATES, FLOATS, TRICKY_TEXT


def _pymysql(value: Any) -> str:
    """What aiomysql's ``Connection.escape`` gives (backslash escapes on)."""
    if isinstance(value, str):
        return "'" + escape_string(value) + "'"
    return escape_item(value, "utf8mb4")


HOSTILE = TRICKY_TEXT + [BIG_TEXT, "NUL-free \\0 literal", "ctrl-z \x1a", "\\", "'", '"', "é\n😀\r'\"\\"]
COLUMNS: list[list[Any]] = [
    HOSTILE, HOSTILE + [None], [1, -5, 0, 2**63 - 1, None], [True, False, None], DATES + [None],
    FLOATS + [None, 1.0, 1e22, 5e-324], [datetime(2024, 1, 2, tzinfo=timezone(timedelta(hours=2))), None],
    [1, "mixed", 2.5, None, True], [None, None],
]


@pytest.mark.parametrize("values", COLUMNS)
def test_column_literals_equal_pymysql(values: list[Any]) -> None:
    assert column_literals(values, _pymysql) == [_pymysql(v) for v in values]


def test_escape_text_equals_escape_string_on_random_text() -> None:
    rng = random.Random(4)
    alphabet = "ab\\\x00\n\r\x1a'\"é😀0Zn\t"
    for _ in range(20000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 16)))
        assert _escape_text(text) == escape_string(text)


def test_floats_mysql_refuses_still_raise() -> None:
    with pytest.raises(Exception, match="can not be used"):
        column_literals([float("inf")], _pymysql)


def test_insert_statements_split_under_the_limit_like_executemany() -> None:
    rows = [(i, "x" * 50) for i in range(100)]
    statements = list(insert_statements("INSERT INTO t (a, b) VALUES ", rows, _pymysql, "utf8", 400))
    assert all(len(s) <= 400 for s in statements) and len(statements) > 1
    values = b",".join(s.removeprefix(b"INSERT INTO t (a, b) VALUES ") for s in statements)
    assert values == ",".join(f"({i},'{'x' * 50}')" for i in range(100)).encode()
    one = list(insert_statements("INSERT INTO t (a, b) VALUES ", rows, _pymysql, "utf8", 1 << 20))
    assert one == [b"INSERT INTO t (a, b) VALUES " + values]


CHECKED = [
    (MYSQL, LiveColumn("c", ColumnType.TEXT, True, "varchar(5)"), ColumnType.TEXT),
    (MYSQL, LiveColumn("c", ColumnType.TEXT, True, "text"), ColumnType.TEXT),
    (MYSQL, LiveColumn("c", ColumnType.TEXT, True, "tinytext"), ColumnType.TEXT),
    (POSTGRES, LiveColumn("c", ColumnType.TEXT, True, "text"), ColumnType.TEXT),
    (POSTGRES, LiveColumn("c", ColumnType.TEXT, True, "character varying(3)"), ColumnType.TEXT),
    (MYSQL, LiveColumn("c", ColumnType.INTEGER, True, "int"), ColumnType.INTEGER),
    (MYSQL, LiveColumn("c", ColumnType.INTEGER, True, "tinyint unsigned"), ColumnType.INTEGER),
    (POSTGRES, LiveColumn("c", ColumnType.INTEGER, True, "bigint"), ColumnType.INTEGER),
]
TEXTS = ["", "abc", "abcde", "abcdef", "a\x00b", "é" * 70, "😀" * 64, "😀" * 63 + "a", "x" * 300, None]
INTEGERS = [0, -1, 127, 128, 255, 256, -129, 2**31 - 1, 2**31, -(2**31) - 1, 2**63 - 1, 2**63, None]


@pytest.mark.parametrize("caps, live, ctype", CHECKED)
def test_column_check_agrees_with_value_check(caps: Any, live: LiveColumn, ctype: ColumnType) -> None:
    check, fits = value_check(caps, live, ctype), column_check(caps, live, ctype)
    assert check is not None and fits is not None
    pool = TEXTS if ctype is ColumnType.TEXT else INTEGERS
    rng = random.Random(7)
    for size in (1, 1, 2, 3, 5):
        for _ in range(60):
            values = [rng.choice(pool) for _ in range(size)]
            try:
                for v in values:
                    if v is not None:
                        check(v)
                expected = True
            except ValueError:
                expected = False
            assert fits(values) is expected, values
