"""A dump cut short or altered never imports: header row counts, the trailer's counts and digests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import anyio
import httpx
import orjson
import pytest
import xxhash

from memoria_stream.api.settings import Settings
from memoria_stream.codecs import decoder_for
from memoria_stream.codecs.base import Metadata, RowBatch, Trailer
from memoria_stream.transfer.completeness import verify_file
from memoria_stream.transfer.files import export_data, import_data
from memoria_stream.errors import InputError, VerificationError
from memoria_stream.transfer.verify import verify

from support.api_server import running
from support.copy_support import access_events, run_cli, seed
from support.dataset import build_dataset
from support.helpers import assert_same, read_all

IMPORT = "/admin/migrations/import"


async def _state(url: str) -> dict[str, tuple[int | None, int]]:
    """Every table's row count and checksum: the target's state, compared before and after."""
    return {t.name: (t.rows_a, t.checksum_a) for t in (await verify(url, url)).tables}


@pytest.fixture(scope="module")
def big_dump(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, int]:
    """About 3,000 rows exported from SQLite to NDJSON and JSON; returns both paths and the row count."""
    folder = tmp_path_factory.mktemp("completeness")
    source = f"sqlite:///{folder / 'source.db'}"
    data = build_dataset()
    data["memory_access_events"] = access_events(3000)

    async def make() -> None:
        await seed(source, data)
        await export_data(folder / "dump.ndjson", database_url=source)
        await export_data(folder / "dump.json", database_url=source)
    anyio.run(make)
    return folder / "dump.ndjson", folder / "dump.json", sum(len(rows) for rows in data.values())


async def test_trailer_digests_equal_what_the_file_holds(big_dump: tuple[Path, Path, int]) -> None:
    """JSON: the trailer's digests are ``verify``'s checksums. NDJSON: the header announces the line
    digest and each table's is the sum of its row lines' XXH3-128, computed here from the bytes."""
    ndjson, json_file, total = big_dump
    assert total >= 3000
    checks = {t.name: t for t in (await verify(str(ndjson), str(json_file))).tables}
    assert all(t.match for t in checks.values())
    line_sums: dict[str, int] = {}
    for line in ndjson.read_bytes().splitlines():
        table = orjson.loads(line).get("table")
        if table:
            line_sums[table] = (line_sums.get(table, 0) + xxhash.xxh3_128_intdigest(line)) % (1 << 128)
    expected = {json_file: ({n: c.checksum_a for n, c in checks.items()}, 64), ndjson: (line_sums, 32)}
    for path, (digests, width) in expected.items():
        metadata, trailer = await _ends(path)
        assert metadata.get("row_digest") == ("xxh3-128/line" if path == ndjson else None)
        entries = {e["name"]: e for e in trailer["tables"]}
        assert set(entries) == set(checks)
        for name, check in checks.items():
            assert entries[name]["row_count"] == check.rows_a
            assert len(entries[name]["digest"]) == width
            assert int(entries[name]["digest"], 16) == digests[name], (path, name)


async def _ends(path: Path) -> tuple[dict, dict]:  # type: ignore[type-arg]
    """A file's header and trailer objects, as its decoder reads them."""
    metadata: dict = {}  # type: ignore[type-arg]
    trailer: dict = {}  # type: ignore[type-arg]
    async for event in decoder_for(path.suffix[1:]).events(_read(path), source=str(path)):
        if isinstance(event, Metadata):
            metadata = event.values
        elif isinstance(event, Trailer):
            trailer = event.values
    assert trailer, path
    return metadata, trailer


def _as_older_ndjson(ndjson: Path, json_file: Path) -> bytes:
    """The NDJSON dump as a memoria-stream without line digests wrote it: no ``row_digest`` in the
    header, the canonical checksums (the JSON dump's trailer, same rows) in the trailer."""
    lines = ndjson.read_bytes().splitlines(keepends=True)
    header = orjson.loads(lines[0])
    del header["metadata"]["row_digest"]
    trailer = {"trailer": orjson.loads(json_file.read_bytes())["trailer"]}
    return b"".join([orjson.dumps(header) + b"\n", *lines[1:-1], orjson.dumps(trailer) + b"\n"])


async def test_older_ndjson_files_are_checked_against_their_canonical_digests(
        db_url: str, big_dump: tuple[Path, Path, int], tmp_path: Path) -> None:
    ndjson, json_file, total = big_dump
    older = _write(tmp_path / "older.ndjson", _as_older_ndjson(ndjson, json_file))
    assert (await verify_file(older)).ok
    report = await import_data(older, database_url=db_url)
    assert report.total_rows == total and not report.warnings
    assert (await verify(str(ndjson), db_url)).ok
    before = await _state(db_url)
    edited = _write(tmp_path / "older-edited.ndjson", _edit_one_letter(older.read_bytes()))
    with pytest.raises(InputError, match="table chat_history: the content differs from the trailer's digest"):
        await import_data(edited, database_url=db_url)
    assert await _state(db_url) == before


async def test_the_line_digest_reads_crlf_alike_and_its_header_cannot_be_dropped(
        big_dump: tuple[Path, Path, int], tmp_path: Path) -> None:
    ndjson, _, _ = big_dump
    crlf = _write(tmp_path / "crlf.ndjson", ndjson.read_bytes().replace(b"\n", b"\r\n"))
    assert (await verify_file(crlf)).ok
    lines = ndjson.read_bytes().splitlines(keepends=True)
    header = orjson.loads(lines[0])
    # The digest kind removed (the trailer is then read as canonical checksums), or one not known.
    for kind, problem in ((None, "with digests of 64 hex digits"), ("sha1/line", "unknown row_digest 'sha1/line'")):
        if kind is None:
            del header["metadata"]["row_digest"]
        else:
            header["metadata"]["row_digest"] = kind
        path = _write(tmp_path / "header.ndjson", b"".join([orjson.dumps(header) + b"\n", *lines[1:]]))
        report = await verify_file(path)
        assert [p.message for p in report.problems if problem in p.message], (kind, report.problems)


async def _read(path: Path):  # type: ignore[no-untyped-def]
    yield path.read_bytes()


async def test_a_dump_cut_at_line_300_never_imports(db_url: str, big_dump: tuple[Path, Path, int],
                                                    tmp_path: Path) -> None:
    """The issue's case: 3,000 rows, cut after line 300, imported over data -> refused, target unchanged."""
    ndjson, _, _ = big_dump
    await seed(db_url, build_dataset(3))
    before = await _state(db_url)
    cut = tmp_path / "cut.ndjson"
    cut.write_bytes(b"".join(ndjson.read_bytes().splitlines(keepends=True)[:300]))
    with pytest.raises(InputError) as failure:
        await import_data(cut, database_url=db_url)
    assert str(failure.value).startswith(f"{cut}, table ") and "announces" in str(failure.value)
    assert await _state(db_url) == before


def _edit_one_letter(data: bytes) -> bytes:
    """One letter changed inside a text value of a row (not a key, not the header or trailer)."""
    lines = data.splitlines(keepends=True)
    for i, line in enumerate(lines):
        obj = orjson.loads(line)
        if obj.get("table") == "chat_history":
            text = obj["data"]["user_input"]
            obj["data"]["user_input"] = text[:-1] + ("x" if text[-1] != "x" else "y")
            lines[i] = orjson.dumps(obj) + b"\n"
            return b"".join(lines)
    raise AssertionError("no chat_history row")


async def test_a_changed_letter_is_refused_unless_accepted(db_url: str, big_dump: tuple[Path, Path, int],
                                                           tmp_path: Path) -> None:
    ndjson, _, _ = big_dump
    await seed(db_url, build_dataset(3))
    before = await _state(db_url)
    edited = tmp_path / "edited.ndjson"
    edited.write_bytes(_edit_one_letter(ndjson.read_bytes()))
    with pytest.raises(InputError, match="table chat_history: the content differs from the trailer's digest"):
        await import_data(edited, database_url=db_url)
    assert await _state(db_url) == before
    # --table narrowing: only the selected tables are checked.
    report = await import_data(edited, database_url=db_url, tables=["agents"])
    assert report.tables["agents"].rows > 0 and not report.warnings
    # The operator edited it on purpose: imported, with a warning, the edit arrives as written.
    report = await import_data(edited, database_url=db_url, accept_altered=True)
    assert any("--accept-altered" in w and "chat_history" in w for w in report.warnings)
    verified = await verify(str(edited), db_url)
    assert verified.ok, verified.render()


async def test_checks_on_json_files(big_dump: tuple[Path, Path, int], tmp_path: Path) -> None:
    _, json_file, total = big_dump
    url = f"sqlite:///{tmp_path / 't.db'}"
    doc = orjson.loads(json_file.read_bytes())
    assert list(doc) == ["metadata", "data", "trailer"]
    report = await import_data(json_file, database_url=url)
    assert report.total_rows == total and not report.warnings
    before = await _state(url)
    variants = {
        "no trailer": {"metadata": doc["metadata"], "data": doc["data"]},
        "a row removed": {**doc, "data": {**doc["data"], "agents": doc["data"]["agents"][1:]}},
        "a value changed": {**doc, "data": {**doc["data"], "teams": [
            {**doc["data"]["teams"][0], "name": doc["data"]["teams"][0]["name"] + "!"}, *doc["data"]["teams"][1:]]}},
    }
    for label, variant in variants.items():
        path = tmp_path / "variant.json"
        path.write_bytes(orjson.dumps(variant))
        with pytest.raises(InputError):
            await import_data(path, database_url=url)
        assert await _state(url) == before, label
        with pytest.raises(VerificationError):
            (await verify_file(path)).raise_for_damage()


async def test_memoria_files_are_checked_against_their_header(samples: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 't.db'}"
    for name in ("memoria-sample.ndjson", "memoria-sample.json"):  # no trailer: they still import
        report = await import_data(samples / name, database_url=url)
        assert report.total_rows == 600 and not report.warnings
        assert (await verify_file(samples / name)).ok
    before = await _state(url)
    lines = (samples / "memoria-sample.ndjson").read_bytes().splitlines(keepends=True)
    cut = tmp_path / "memoria-cut.ndjson"
    cut.write_bytes(b"".join(lines[:-5]))
    with pytest.raises(InputError, match="table cluster_members: the header announces 21 rows, the file holds 16"):
        await import_data(cut, database_url=url)
    doc = orjson.loads((samples / "memoria-sample.json").read_bytes())
    doc["data"]["agents"] = doc["data"]["agents"][:-1]
    short = tmp_path / "memoria-short.json"
    short.write_bytes(orjson.dumps(doc))
    with pytest.raises(InputError, match="table agents: the header announces 16 rows, the file holds 15"):
        await import_data(short, database_url=url)
    assert await _state(url) == before


async def test_a_file_announcing_nothing_imports_with_a_warning(samples: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 't.db'}"
    rows = (samples / "memoria-sample.ndjson").read_bytes().splitlines(keepends=True)[1:]  # header-less
    path = tmp_path / "headerless.ndjson"
    path.write_bytes(b"".join(rows))
    report = await import_data(path, database_url=url)
    assert report.total_rows == 600
    assert any("completeness cannot be proven" in w for w in report.warnings)
    assert not (await verify_file(path)).ok  # verify FILE cannot prove it whole either


def test_verify_file_command(big_dump: tuple[Path, Path, int], tmp_path: Path) -> None:
    ndjson, json_file, _ = big_dump
    for path in (ndjson, json_file):
        ok = run_cli("verify", str(path))
        assert ok.returncode == 0 and "intact" in ok.stdout and "chat_history" in ok.stdout, ok.stderr
    lines = ndjson.read_bytes().splitlines(keepends=True)
    damaged = {
        "cut.ndjson": b"".join(lines[:300]),
        "no-trailer.ndjson": b"".join(lines[:-1]),
        "edited.ndjson": _edit_one_letter(ndjson.read_bytes()),
        "cut.json": json_file.read_bytes()[:5000],
    }
    for name, data in damaged.items():
        path = tmp_path / name
        path.write_bytes(data)
        bad = run_cli("verify", str(path))
        assert bad.returncode == 7, (name, bad.stderr)
        assert bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr
        assert str(path) in bad.stderr
        if name in ("cut.ndjson", "edited.ndjson"):  # a lost trailer alone names no table
            assert "table " in bad.stderr, bad.stderr


async def test_json_decoder_trailer_and_unknown_top_level_keys() -> None:
    doc = (b'{"extra": {"a": [1, [2, {"b": null}]]}, "metadata": {"tables": []}, "more": 7,'
           b' "data": {"teams": [{"id": 1}]}, "trailer": {"tables": []}, "last": [[[]]]}')
    events = [e async for e in decoder_for("json").events(_bytes(doc), source="x.json")]
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["Metadata", "TableStart", "RowBatch", "Trailer"]
    assert isinstance(events[0], Metadata) and isinstance(events[2], RowBatch) and events[2].rows == [{"id": 1}]


async def _bytes(data: bytes):  # type: ignore[no-untyped-def]
    yield data


_DEEP = """
import resource, sys, anyio
from memoria_stream.codecs import decoder_for
from memoria_stream.errors import InputError
doc = b'{"unknown": ' + b'[' * 32768 + b']' * 32768 + b', "data": {}}'
async def main():
    try:
        async for _ in decoder_for("json").events(_one(doc), source="deep.json"):
            pass
    except InputError as exc:
        print("refused:", exc)
async def _one(data):
    yield data
anyio.run(main)
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the forking parent (pytest) across exec.
print("maxrss_kib", next(l.split()[1] for l in open("/proc/self/status") if l.startswith("VmHWM:")))
"""


def test_deep_nesting_under_an_unknown_key_is_refused_with_bounded_memory() -> None:
    done = subprocess.run([sys.executable, "-c", _DEEP], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "refused: deep.json: nesting deeper than 512 levels" in done.stdout
    peak_mib = int(done.stdout.split("maxrss_kib")[1]) / 1024
    assert peak_mib < 150, f"peak RSS {peak_mib:.0f} MiB"  # 638 MiB before the fix


async def test_api_import_refuses_a_cut_file_unless_accept_altered(big_dump: tuple[Path, Path, int],
                                                                   tmp_path: Path) -> None:
    ndjson, _, _ = big_dump
    url = f"sqlite:///{tmp_path / 't.db'}"
    await seed(url, build_dataset(3))
    before = await read_all(url)
    cut = b"".join(ndjson.read_bytes().splitlines(keepends=True)[:300])
    with running(Settings(url)) as base:
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            refused = await client.post(IMPORT, content=cut, headers={"Content-Type": "application/x-ndjson"})
            assert refused.status_code == 400 and "announces" in refused.text
            assert_same(before, await read_all(url))
            accepted = await client.post(f"{IMPORT}?accept_altered=true", files={"file": ("cut.ndjson", cut)})
            assert accepted.status_code == 200, accepted.text
            assert any("--accept-altered" in w for w in accepted.json()["warnings"])
    assert (await verify(str(_write(tmp_path / "cut.ndjson", cut)), url, tables=["agents"])).ok


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_digest_sum_equals_the_sum_of_row_digests() -> None:
    """The exporter's fast batch digest is verify's checksum, including the values it folds."""
    from datetime import datetime, timedelta, timezone

    from memoria_stream.transfer.digests import MODULUS, digest_sum, row_digest
    from memoria_stream.model.types import JSON_NULL

    columns = ("a", "b", "c", "d")
    rows = [("x", 1, {"f": -0.0, "g": [0.0, -0.05]}, datetime(2024, 1, 2, 3, 4, 5)),
            (None, 2**70, [-0.0], datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2)))),
            ("text -0.0] here", True, JSON_NULL, None), ("", -0.0, {"k": "-0.0,"}, b"\x00\xff"), ("y", 1.0, 1, 1.5)]
    for row in rows:
        assert digest_sum(columns, [row]) == int.from_bytes(row_digest(columns, row), "big"), row
    assert digest_sum(columns, rows) == sum(int.from_bytes(row_digest(columns, r), "big") for r in rows) % MODULUS
