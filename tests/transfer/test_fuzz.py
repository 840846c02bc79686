"""Fuzzing: codec round trips as properties (hypothesis), and a mutation fuzzer over a real export.

Every mutated file either imports correctly (the target then equals the file) or fails cleanly with
``InputError``/``IntegrityFailure`` and the target unchanged. A file cut short (at any byte or line
boundary) or with a letter changed inside a value must never import: the header's row counts and
the trailer's counts and digests catch it, and ``verify FILE`` must reject it too.
``MEMORIA_FUZZ_CASES`` sets the number of random byte-flip cases (truncation runs at every position
of the file whatever it is); the run prints how many cases it tried.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import random
import shutil
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import orjson
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from memoria_stream.model.catalog import TABLES
from memoria_stream.codecs import decoder_for, encoder_for
from memoria_stream.codecs.base import RowBatch, TableLayout
from memoria_stream.transfer.completeness import verify_file
from memoria_stream.drivers import connect
from memoria_stream.drivers.base import LiveColumn
from memoria_stream.drivers.sqlite import CAPABILITIES as SQLITE
from memoria_stream.transfer.files import export_data, import_data
from memoria_stream.errors import InputError, IntegrityFailure, VerificationError
from memoria_stream.transfer.plans import ImportPlan
from memoria_stream.model.types import JSON_NULL, ColumnType as T
from memoria_stream.transfer.verify import verify

from support.dataset import build_dataset, load_dataset
from support.helpers import canonical

CASES = int(os.environ.get("MEMORIA_FUZZ_CASES", "1000"))
CLEAN = (InputError, IntegrityFailure)
FUZZ_TABLES = ["teams", "agents", "workspaces", "workspace_members"]
_TRIED: dict[str, int] = {}


# --- encode -> decode properties ----------------------------------------------------------------

_INT64 = st.integers(-(2**63), 2**63 - 1)
_json_leaf = st.none() | st.booleans() | _INT64 | st.text() | st.floats(
    allow_nan=False, allow_infinity=False)
_json = st.recursive(_json_leaf, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                           max_size=4), max_leaves=12)
_VALUES: dict[T, st.SearchStrategy[Any]] = {
    T.TEXT: st.text(),
    T.INTEGER: _INT64,
    T.FLOAT: st.floats(allow_nan=False, allow_infinity=False),
    T.BOOLEAN: st.booleans(),
    T.TIMESTAMP: st.datetimes(min_value=datetime(1000, 1, 1), max_value=datetime(9999, 12, 31)),
    T.JSON: st.just(JSON_NULL) | _json,
    T.BYTES: st.binary(),
}
_TYPES = list(_VALUES)
_CANONICAL_CAPS = dataclasses.replace(SQLITE, encoders={})  # file values -> canonical, no driver encoding


@st.composite
def tables(draw: Callable[..., Any]) -> tuple[TableLayout, list[tuple[Any, ...]]]:
    types = draw(st.lists(st.sampled_from(_TYPES), min_size=1, max_size=len(_TYPES)))
    layout = TableLayout("fuzzed", tuple(f"c{i}" for i in range(len(types))), tuple(types))
    row = st.tuples(*[st.none() | _VALUES[t] for t in types])
    return layout, draw(st.lists(row, max_size=6))


async def _chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i:i + size]


async def _round_trip(fmt: str, layout: TableLayout, rows: list[tuple[Any, ...]], chunk: int) -> list[tuple[Any, ...]]:
    enc = encoder_for(fmt)
    data = enc.header({"format": fmt}) + enc.begin_table(layout, 0)
    if rows:
        data += enc.rows(layout, rows, True)
    data += enc.end_table(layout) + enc.footer({"tables": []})
    live = [LiveColumn(name, t, True) for name, t in zip(layout.columns, layout.types)]
    plan = ImportPlan(layout.name, live, _CANONICAL_CAPS, lambda _: None)
    out: list[tuple[Any, ...]] = []
    async for event in decoder_for(fmt).events(_chunks(data, chunk), source="fuzz"):
        if isinstance(event, RowBatch):
            out += [plan.build(obj, i, "fuzz") for i, obj in enumerate(event.rows)]
    return out


@pytest.mark.parametrize("fmt", ["ndjson", "json"])
@settings(max_examples=max(50, CASES // 10), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(table=tables(), chunk=st.integers(1, 4096))
async def test_encode_decode_returns_the_same_rows(fmt: str, table: tuple[TableLayout, list[Any]], chunk: int) -> None:
    layout, rows = table
    _TRIED[f"round trip {fmt}"] = _TRIED.get(f"round trip {fmt}", 0) + 1
    back = await _round_trip(fmt, layout, rows, chunk)
    assert [canonical(list(r)) for r in back] == [canonical(list(r)) for r in rows]


async def test_json_codec_int64_min() -> None:
    """yajl rejects -2**63 when asked for floats; the decoder parses numbers as Decimal instead."""
    layout = TableLayout("fuzzed", ("c0",), (T.INTEGER,))
    assert await _round_trip("json", layout, [(-(2**63),)], 4096) == [(-(2**63),)]


# --- the mutation fuzzer --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def base_export(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, Path]:
    """A small real export (NDJSON) and a pristine SQLite target holding other data."""
    import anyio

    folder = tmp_path_factory.mktemp("fuzz")
    source, pristine, dump = folder / "source.db", folder / "pristine.db", folder / "base.ndjson"

    async def make() -> None:
        async with connect(f"sqlite:///{source}") as conn:
            await load_dataset(conn, {n: build_dataset(2)[n] for n in FUZZ_TABLES})
        await export_data(dump, database_url=f"sqlite:///{source}", format="ndjson")
        async with connect(f"sqlite:///{pristine}") as conn:
            await load_dataset(conn, build_dataset(3))
    anyio.run(make)
    return dump.read_bytes(), pristine


def _fingerprint(path: Path) -> str:
    """Count and content of every table, as one hash (the target's state)."""
    with sqlite3.connect(path) as db:
        return hashlib.sha256("\n".join(db.iterdump()).encode()).hexdigest()


def truncations(data: bytes) -> list[tuple[str, bytes]]:
    # Cutting only the final newline loses nothing: every other cut loses data and must be refused.
    return [(f"truncated at {i}", data[:i]) for i in range(len(data)) if data[i:].strip()]


def line_cuts(data: bytes, step: int = 1) -> list[tuple[str, bytes]]:
    """The file cut after line 1, 2, … (at every ``step``-th line boundary): each a clean-looking file."""
    lines = data.splitlines(keepends=True)
    return [(f"cut after line {n}", b"".join(lines[:n])) for n in range(0, len(lines), step)]


def letter_changes(data: bytes, count: int, seed: int = 10) -> list[tuple[str, bytes]]:
    """One character of a text value in a row changed to another letter: still valid JSON, same shape."""
    rng = random.Random(seed)
    lines = data.splitlines(keepends=True)
    rows = [i for i, line in enumerate(lines) if _text_values(orjson.loads(line))]
    out = []
    for n in range(count):
        i = rng.choice(rows)
        obj = orjson.loads(lines[i])
        column = rng.choice(_text_values(obj))
        text = obj["data"][column]
        at = rng.randrange(len(text))
        obj["data"][column] = text[:at] + ("q" if text[at] != "q" else "z") + text[at + 1:]
        mutated = list(lines)
        mutated[i] = orjson.dumps(obj) + b"\n"
        out.append((f"line {i + 1}, column {column}: letter {at} changed", b"".join(mutated)))
    return out


def _text_values(obj: Any) -> list[str]:
    data = obj.get("data") if isinstance(obj, dict) and "table" in obj else None
    return [k for k, v in (data or {}).items() if isinstance(v, str) and v and not v[:4].isdigit()]


def flips(data: bytes, count: int, seed: int = 8) -> list[tuple[str, bytes]]:
    rng = random.Random(seed)
    out = []
    for n in range(count):
        mutated = bytearray(data)
        for _ in range(rng.choice((1, 1, 2, 3))):
            i = rng.randrange(len(data))
            mutated[i] = rng.randrange(256) if rng.random() < 0.5 else mutated[i] ^ (1 << rng.randrange(8))
        out.append((f"flip case {n}", bytes(mutated)))
    return out


def line_shuffles(data: bytes, count: int, seed: int = 9) -> list[tuple[str, bytes]]:
    rng = random.Random(seed)
    lines = data.splitlines(keepends=True)
    out = []
    for n in range(count):
        mutated = list(lines)
        if n % 2:
            i = rng.randrange(len(mutated))
            mutated.insert(rng.randrange(len(mutated) + 1), mutated[i])
            out.append((f"duplicated line {i + 1} (case {n})", b"".join(mutated)))
        else:
            rng.shuffle(mutated)
            out.append((f"reordered lines (case {n})", b"".join(mutated)))
    return out


async def _one_case(label: str, data: bytes, pristine: Path, work: Path, expected: str, *,
                    damaged: bool = False) -> str:
    """``damaged``: the mutation lost or changed data, so the import must be refused."""
    target = work / "target.db"
    shutil.copyfile(pristine, target)
    url = f"sqlite:///{target}"
    mutated = work / "mutated.ndjson"
    mutated.write_bytes(data)
    try:
        imported = await import_data(data, database_url=url, source_label="fuzz.ndjson")
    except CLEAN:
        assert _fingerprint(target) == expected, f"{label}: failed but the target changed"
        return "failed cleanly"
    except BaseException as exc:  # noqa: BLE001 - any other type is the bug this test looks for
        raise AssertionError(f"{label}: {type(exc).__name__}: {exc}") from exc
    assert not damaged, f"{label}: a damaged file imported: {imported.as_dict()}"
    named = {obj.get("table") for obj in map(orjson.loads, filter(bytes.strip, data.splitlines()))
             if isinstance(obj, dict)} & set(TABLES)
    report = await verify(str(mutated), url, tables=sorted(named))
    # A mangled column name is dropped (with a warning) and the column gets its default, which for
    # timestamps is "now": such tables are compared by count, every other one value for value.
    defaulted = {w.split(".", 1)[0] for w in imported.warnings if "values dropped" in w}
    for check in report.tables:
        same = check.rows_a == check.rows_b if check.name in defaulted else check.match
        assert same, f"{label}: imported, but the target differs from the file\n{report.render()}"
    return "imported"


_DAMAGING = {"truncation", "line cuts", "letters"}


@pytest.mark.parametrize("kind", ["truncation", "line cuts", "letters", "flips", "lines"])
async def test_mutated_exports_import_or_fail_cleanly(
        kind: str, base_export: tuple[bytes, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data, pristine = base_export
    cases = {"truncation": lambda: truncations(data), "line cuts": lambda: line_cuts(data),
             "letters": lambda: letter_changes(data, max(20, CASES // 20)), "flips": lambda: flips(data, CASES),
             "lines": lambda: line_shuffles(data, max(20, CASES // 5))}[kind]()
    expected = _fingerprint(pristine)
    outcomes: dict[str, int] = {}
    for label, mutated in cases:
        outcome = await _one_case(label, mutated, pristine, tmp_path, expected, damaged=kind in _DAMAGING)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    _TRIED[kind] = len(cases)
    with capsys.disabled():
        print(f"\nfuzz {kind}: {len(cases)} cases over a {len(data)}-byte export: "
              + ", ".join(f"{n} {k}" for k, n in sorted(outcomes.items())) + "; 0 tracebacks, 0 partial targets")
    assert sum(outcomes.values()) == len(cases)


async def test_mutations_against_every_backend(db_url: str, base_export: tuple[bytes, Path], tmp_path: Path) -> None:
    """A handful of the same mutations against the real servers, checked by count and checksum."""
    data, _ = base_export
    async with connect(db_url) as conn:
        await load_dataset(conn, build_dataset(3))
    before = {t.name: (t.rows_a, t.checksum_a) for t in (await verify(db_url, db_url)).tables}
    damaging = truncations(data)[:: max(1, len(data) // 8)] + line_cuts(data, 4) + letter_changes(data, 4, seed=5)
    cases = [(label, mutated, True) for label, mutated in damaging] + [
        (label, mutated, False) for label, mutated in flips(data, 8, seed=3) + line_shuffles(data, 4, seed=4)]
    for label, mutated, damaged in cases:
        try:
            await import_data(mutated, database_url=db_url, source_label="fuzz.ndjson")
        except CLEAN:
            after = {t.name: (t.rows_a, t.checksum_a) for t in (await verify(db_url, db_url)).tables}
            assert after == before, f"{label}: failed but the target changed"
            continue
        except BaseException as exc:  # noqa: BLE001
            raise AssertionError(f"{label}: {type(exc).__name__}: {exc}") from exc
        assert not damaged, f"{label}: a damaged file imported"
        mutated_path = tmp_path / "mutated.ndjson"
        mutated_path.write_bytes(mutated)
        report = await verify(str(mutated_path), db_url, tables=FUZZ_TABLES)
        assert report.ok, f"{label}: imported, but the target differs from the file\n{report.render()}"
        before = {t.name: (t.rows_a, t.checksum_a) for t in (await verify(db_url, db_url)).tables}


async def test_a_3k_row_dump_cut_anywhere_never_imports(db_url: str, tmp_path: Path) -> None:
    """A few cuts of a 3,000-row dump, into a target holding data: refused, target unchanged."""
    source = f"sqlite:///{tmp_path / 'source.db'}"
    async with connect(source) as conn:
        await load_dataset(conn, {"memory_access_events": _access_events(3000)})
    dump = tmp_path / "big.ndjson"
    await export_data(dump, database_url=source)
    async with connect(db_url) as conn:
        await load_dataset(conn, build_dataset(3))
    before = {t.name: (t.rows_a, t.checksum_a) for t in (await verify(db_url, db_url)).tables}
    lines = dump.read_bytes().splitlines(keepends=True)
    for n in (1, 2, 300, 1500, len(lines) - 2, len(lines) - 1):
        with pytest.raises(InputError):
            await import_data(b"".join(lines[:n]), database_url=db_url, source_label="big.ndjson")
        after = {t.name: (t.rows_a, t.checksum_a) for t in (await verify(db_url, db_url)).tables}
        assert after == before, f"cut after line {n}: the target changed"


def _access_events(count: int) -> list[dict[str, Any]]:
    return [dict(id=i + 1, memory_id=f"ltm-{i % 97}", namespace="default", team_id=f"team-{i % 7}",
                 accessed_at=datetime(2024, 5, 1, 12, 0, 0), access_type="retrieval", source="api",
                 metadata_json={"n": i}, workspace_id=None) for i in range(count)]


@pytest.mark.parametrize("name", ["memoria-sample.ndjson", "memoria-sample.json"])
async def test_memorias_own_sample_cut_short_is_refused(name: str, samples: Path, tmp_path: Path) -> None:
    """Memoria's files carry no trailer; the header's row counts catch a cut (NDJSON at a line
    boundary; JSON by a row removed, since a cut JSON document no longer parses)."""
    import anyio  # noqa: F401 - the test runs under anyio's plugin
    target = tmp_path / "target.db"
    async with connect(f"sqlite:///{target}") as conn:
        await load_dataset(conn, build_dataset(3))
    expected = _fingerprint(target)
    data = (samples / name).read_bytes()
    if name.endswith(".ndjson"):
        cases = line_cuts(data, 37)[1:]
    else:
        doc = orjson.loads(data)
        cases = [(f"last row of {t} removed", orjson.dumps({**doc, "data": {**doc["data"], t: rows[:-1]}}))
                 for t, rows in doc["data"].items() if rows]
    for label, mutated in cases:
        with pytest.raises(InputError, match="the header announces"):
            await import_data(mutated, database_url=f"sqlite:///{target}", source_label=name)
        assert _fingerprint(target) == expected, f"{label}: the target changed"


async def test_verify_file_accepts_intact_and_rejects_damaged(base_export: tuple[bytes, Path], tmp_path: Path) -> None:
    data, _ = base_export
    path = tmp_path / "dump.ndjson"
    path.write_bytes(data)
    assert (await verify_file(path)).ok
    damaged = line_cuts(data) + letter_changes(data, 20, seed=11) + truncations(data)[::7]
    for label, mutated in damaged:
        path.write_bytes(mutated)
        try:
            report = await verify_file(path)
        except VerificationError:
            continue
        assert not report.ok, f"{label}: verify FILE found a damaged file intact"
