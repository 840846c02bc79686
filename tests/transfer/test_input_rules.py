"""Values an export could not write back: non-finite floats (JSON has no NaN or infinity; they
would be exported as null and no longer re-import), and ``"$json_null"`` markers that do not name
JSON columns exactly. Each is refused with one line naming where, and the target is unchanged."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from memoria_stream.drivers import connect
from memoria_stream.model.types import JSON_NULL

from support.databases import make_database
from support.copy_support import run_cli, seed
from support.dataset import build_dataset
from support.helpers import assert_same, read_all
from test_hostile import loaded, ndjson, rejected  # noqa: F401  (``loaded`` is a fixture)

CLUSTER = {"id": 99, "summary": "s", "polarity": 0.5}


@pytest.mark.parametrize("value", ["inf", "-Infinity", "nan", " NaN "])
async def test_non_finite_text_is_refused_for_a_float_column(loaded: str, tmp_path: Path, value: str) -> None:
    path = ndjson(tmp_path / "nan.ndjson", ("clusters", {**CLUSTER, "polarity": value}))
    await rejected(loaded, path, "nan.ndjson:2", "table clusters", "column polarity", "finite number",
                   extra=("--no-truncate",))


async def test_an_overflowing_json_number_is_refused(loaded: str, tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    path.write_text('{"metadata": {}, "data": {"clusters": [{"id": 99, "summary": "s", "polarity": 1e999}]}}')
    await rejected(loaded, path, "big.json", "table clusters", "column polarity", extra=("--no-truncate",))


@pytest.mark.parametrize("special", ["NaN", "Infinity", "-Infinity"])
async def test_copy_of_a_non_finite_float_is_refused(db_url: str, tmp_path: Path, special: str) -> None:
    """PostgreSQL stores NaN and infinities; a copy of one fails instead of writing it."""
    async for source in make_database("postgres", tmp_path, "nan-source"):
        await seed(source, build_dataset(2))
        async with connect(source) as conn:
            await conn.execute(f"UPDATE clusters SET polarity = '{special}'::float8 WHERE id = 1")
        await seed(db_url, build_dataset(3))
        before = await read_all(db_url)
        result = run_cli("copy", source, db_url)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 3 and len(lines) == 1, result.stderr
        assert "table clusters" in lines[0] and "finite number" in lines[0], lines[0]
        assert_same(before, await read_all(db_url))


@pytest.mark.parametrize("marker, needle", [
    ("xxcentroidxx", "must be a list"),       # a string holding a JSON column's name is not a list of it
    (["xxcentroidxx"], "xxcentroidxx"),       # nor is a name that merely contains it
    ([1], "must be a list"),                  # not names
    (["summary"], "summary"),                 # a column, but not a JSON one
    ({"centroid": True}, "must be a list"),
])
async def test_json_null_marker_must_list_json_columns_exactly(loaded: str, tmp_path: Path, marker: Any,
                                                               needle: str) -> None:
    row = {"id": 99, "summary": "s", "centroid": None, "$json_null": marker}
    path = ndjson(tmp_path / "marker.ndjson", ("clusters", row))
    await rejected(loaded, path, "marker.ndjson:2", "table clusters", "$json_null", needle,
                   extra=("--no-truncate",))


async def test_json_null_marker_naming_a_json_column_stores_json_null(loaded: str, tmp_path: Path) -> None:
    row = {"id": 99, "summary": "s", "centroid": None, "$json_null": ["centroid"]}
    result = run_cli("import-data", str(ndjson(tmp_path / "ok.ndjson", ("clusters", row))), "--no-truncate",
                     "--database-url", loaded)
    assert result.returncode == 0, result.stderr
    async with connect(loaded) as conn:
        stored = await conn.fetch("SELECT centroid FROM clusters WHERE id = 99")
    assert stored[0][0] is not None  # JSON null, not SQL NULL


@pytest.mark.parametrize("column", ["chat_id", "team_id", "workspace_id"])
async def test_a_dangling_reference_is_named_by_its_column(loaded: str, tmp_path: Path, column: str) -> None:
    """short_term_memory has three foreign keys, checked in one pass: the one that dangles is named."""
    row = {k: (None if v is JSON_NULL else v) for k, v in build_dataset(4)["short_term_memory"][0].items()}
    row.update({"memory_id": "stm-dangling", column: "nowhere"})
    path = ndjson(tmp_path / "dangling.ndjson", ("short_term_memory", row))
    await rejected(loaded, path, "table short_term_memory", f"column {column}", "'nowhere' has no row in",
                   extra=("--no-truncate",))
