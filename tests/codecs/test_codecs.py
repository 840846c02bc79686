"""Codecs in isolation: sniffing, header-less NDJSON, any key order in JSON, encoder output shape."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from memoria_stream.codecs.base import Metadata, RowBatch, TableLayout, TableStart
from memoria_stream.codecs.json import JSONDecoder, JSONEncoder
from memoria_stream.codecs.ndjson import NDJSONDecoder, NDJSONEncoder
from memoria_stream.errors import InputError
from memoria_stream.codecs.streams import sniff_format
from memoria_stream.model.types import JSON_NULL, ColumnType as T


async def chunks(data: bytes, size: int = 7):
    for i in range(0, len(data), size):
        yield data[i:i + size]


async def collect(decoder, data: bytes, size: int = 7) -> list:  # type: ignore[no-untyped-def]
    return [e async for e in decoder.events(chunks(data, size), source="t")]


def rows_of(events: list) -> dict[str, list]:  # type: ignore[type-arg]
    out: dict[str, list] = {}  # type: ignore[type-arg]
    for event in events:
        if isinstance(event, RowBatch):
            out.setdefault(event.table, []).extend(event.rows)
    return out


@pytest.mark.parametrize("data, expected", [
    (b'{"metadata": {"format": "ndjson"}}\n{"table": "teams", "data": {}}\n', "ndjson"),
    (b'{"table": "teams", "data": {"team_id": "t"}}\n', "ndjson"),
    (b'{\n  "data": {}\n}', "json"),
    (b'{"metadata": {}, "data": {"teams": []}}', "json"),
    (b"\n\n  {\"metadata\": {}}\n", "ndjson"),
])
async def test_sniffing(data: bytes, expected: str) -> None:
    fmt, stream = await sniff_format(chunks(data, 5))
    assert fmt == expected
    assert b"".join([c async for c in stream]) == data  # nothing consumed


async def test_headerless_ndjson_keeps_its_first_row() -> None:
    data = b'{"table": "teams", "data": {"team_id": "a"}}\n\n{"table": "teams", "data": {"team_id": "b"}}'
    events = await collect(NDJSONDecoder(), data)
    assert rows_of(events) == {"teams": [{"team_id": "a"}, {"team_id": "b"}]}
    batch = next(e for e in events if isinstance(e, RowBatch))
    assert batch.lines == [1, 3]


async def test_memoria_json_with_data_first_streams_rows() -> None:
    doc = {"data": {"cluster_members": [{"id": 1}], "clusters": [{"id": 1}, {"id": 2}], "teams": []},
           "metadata": {"format": "json", "tables": [{"name": "teams", "row_count": 0}]}}
    events = await collect(JSONDecoder(batch_rows=1), json.dumps(doc, indent=2, sort_keys=True).encode())
    assert [e.table for e in events if isinstance(e, TableStart)] == ["cluster_members", "clusters", "teams"]
    assert rows_of(events) == {"cluster_members": [{"id": 1}], "clusters": [{"id": 1}, {"id": 2}]}
    assert isinstance(events[-1], Metadata) and events[-1].table_names == ["teams"]


@pytest.mark.parametrize("bad, message", [
    (b'[1, 2]', "top level"),
    (b'{"data": [1]}', "object of tables"),
    (b'{"data": {"teams": {"a": 1}}}', "list of rows"),
    (b'{"data": {"teams": [1]}}', "not an object"),
    (b'{"data": {"teams": [{"a": 1}', "premature EOF|ends early"),
])
async def test_malformed_json_names_the_problem(bad: bytes, message: str) -> None:
    with pytest.raises(InputError, match=message):
        await collect(JSONDecoder(), bad)


def test_encoders_write_what_json_loads_reads() -> None:
    layout = TableLayout("agents", ("agent_id", "metadata", "created_at"), (T.TEXT, T.JSON, T.TIMESTAMP))
    rows = [("a", {"k": [1, "ü"]}, datetime(2024, 1, 2, 3, 4, 5, 6)), ("b", JSON_NULL, datetime(2024, 1, 2)),
            ("c", None, datetime(2024, 1, 2))]
    enc = JSONEncoder()
    text = (enc.header({"format": "json"}) + enc.begin_table(layout, 0) + enc.rows(layout, rows[:1], True)
            + enc.rows(layout, rows[1:], False) + enc.end_table(layout) + enc.footer({"tables": []}))
    doc = json.loads(text)
    assert list(doc) == ["metadata", "data", "trailer"] and doc["trailer"] == {"tables": []}
    assert doc["data"]["agents"] == [
        {"agent_id": "a", "metadata": {"k": [1, "ü"]}, "created_at": "2024-01-02T03:04:05.000006"},
        {"agent_id": "b", "metadata": None, "created_at": "2024-01-02T00:00:00", "$json_null": ["metadata"]},
        {"agent_id": "c", "metadata": None, "created_at": "2024-01-02T00:00:00"},
    ]
    lines = NDJSONEncoder().rows(layout, rows, True).decode().splitlines()
    # Each line is exactly the compact {"table": …, "data": …} object, as Memoria's importer reads it.
    assert lines == [json.dumps({"table": "agents", "data": obj}, separators=(",", ":"), ensure_ascii=False)
                     for obj in doc["data"]["agents"]]
    assert NDJSONEncoder().rows(layout, [], True) == b""
