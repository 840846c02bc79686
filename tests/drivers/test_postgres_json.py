"""JSON into PostgreSQL's json and jsonb columns: what the driver's encoder made, or stored text a
copy passes on, reads back as the same JSON; text that is not JSON is refused by the server and
nothing is written."""

from __future__ import annotations

from pathlib import Path
from typing import Any, AsyncIterator

import orjson
import pytest

from memoria_stream.drivers import connect
from memoria_stream.drivers.postgres import CAPABILITIES
from memoria_stream.errors import DatabaseError
from memoria_stream.model.types import JSON_NULL, ColumnType as T
from memoria_stream.model.values import json_from_text
from support.databases import make_database
from support.dataset import TRICKY_TEXT

VALUES: list[Any] = [
    {"k": [1, 2.5, None, True], "é": "😀\u2028"}, [], {}, "text", 0, -1.25, 2**63 - 1, False, JSON_NULL,
    {"deep": {"er": [{"x": t} for t in TRICKY_TEXT if "\x00" not in t]}},
]


@pytest.fixture
async def pg_url(tmp_path: Path) -> AsyncIterator[str]:
    async for url in make_database("postgres", tmp_path):
        yield url


@pytest.mark.parametrize("column_type", ["JSON", "JSONB"])
async def test_encoded_json_reads_back_equal(pg_url: str, column_type: str) -> None:
    encode = CAPABILITIES.encoders[T.JSON]
    encoded = [None if v is None else encode(v) for v in VALUES + [None]]
    async with connect(pg_url) as conn:
        await conn.execute(f"CREATE TABLE t (id INTEGER PRIMARY KEY, doc {column_type})")
        await conn.write("t", ["id", "doc"], list(enumerate(encoded)))
        read = [doc for _, doc in await conn.fetch("SELECT id, doc FROM t ORDER BY id")]
    assert all(isinstance(doc, str) for doc in read[:-1]) and read[-1] is None
    assert [json_from_text(doc) for doc in read[:-1]] == VALUES


@pytest.mark.parametrize("column_type", ["JSON", "JSONB"])
async def test_stored_text_passed_on_reads_back_as_stored(pg_url: str, column_type: str) -> None:
    stored = ['{"a": 1,  "b": ["é", "\\u00e9"]}', "null", "[]", '"😀"']
    async with connect(pg_url) as conn:
        await conn.execute(f"CREATE TABLE t (id INTEGER PRIMARY KEY, doc {column_type})")
        await conn.write("t", ["id", "doc"], list(enumerate(stored)))
        read = [doc for _, doc in await conn.fetch("SELECT id, doc FROM t ORDER BY id")]
    if column_type == "JSON":  # json keeps the text as it came
        assert read == stored
    assert list(map(orjson.loads, read)) == list(map(orjson.loads, stored))


@pytest.mark.parametrize("column_type", ["JSON", "JSONB"])
@pytest.mark.parametrize("bad", ["{not json", '{"a": 1', "NaN"])
async def test_the_server_refuses_text_that_is_not_json(pg_url: str, column_type: str, bad: str) -> None:
    async with connect(pg_url) as conn:
        await conn.execute(f"CREATE TABLE t (id INTEGER PRIMARY KEY, doc {column_type})")
        with pytest.raises(DatabaseError, match="json"):
            await conn.write("t", ["id", "doc"], [(1, bad)])
        assert await conn.fetch("SELECT count(*) FROM t") == [(0,)]
