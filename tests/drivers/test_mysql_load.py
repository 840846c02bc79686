"""MariaDB's LOAD DATA LOCAL write path stores exactly what the INSERT path stores, refuses what it
refuses with the same error (target unchanged), and gives way to INSERT where the server refuses it."""

from __future__ import annotations

import logging
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, AsyncIterator

import pytest

from memoria_stream.drivers import connect
from memoria_stream.drivers.mysql import MySQLConnection
from memoria_stream.drivers.mysql_load import column_fields, load_lines, load_text, rows_of_lines
from memoria_stream.errors import DatabaseError, IntegrityFailure
from memoria_stream.model.catalog import TABLES

from support.dataset import BIG_TEXT, DATES, FLOATS, TRICKY_TEXT, build_dataset, load_dataset
from support.databases import MYSQL_ADMIN_URL, make_database
from support.helpers import assert_same, read_all
from support.processes import assert_clean_failure, run

HARD_TEXT = TRICKY_TEXT + [BIG_TEXT, "\\N", "\\", "a\\tb", "\t", "\n", "\r", "\x00", "x\x00y\r\n\tz\\0", "\x1a",
                           "'\"`", "é😀", " lead and trail ",
                           "unit\x1fseparator", "\x1f"]
HARD_FLOATS = FLOATS + [-0.0, 0.0, 1.0, 1e22, 5e-324, 2.2250738585072014e-308, 1 / 3, -1e-7, 9007199254740993.0]
# One row per value of the longest list; the shorter lists repeat. Column c is never NULL.
HARD_COLUMNS: dict[str, tuple[str, list[Any]]] = {
    "t": ("LONGTEXT", HARD_TEXT + [None]),
    "v": ("VARCHAR(20)", ["", "é" * 20, "tab\there", None]),
    "i": ("BIGINT", [0, -1, 2**63 - 1, -(2**63), 42, None]),
    "k": ("BOOL", [True, False, None]),
    "f": ("DOUBLE", HARD_FLOATS + [None]),
    "d": ("DATETIME(6)", DATES + [datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2))), None]),
    "j": ("JSON", ['{"a": "b\\\\c\\n\\t"}', "[]", "null", '"😀"', None]),
}


@pytest.fixture
async def mysql_url(tmp_path: Path) -> AsyncIterator[str]:
    async for url in make_database("mysql", tmp_path):
        yield url


async def loads(conn: MySQLConnection) -> int:
    """LOAD DATA statements this session has run."""
    return int((await conn.fetch("SHOW SESSION STATUS LIKE 'Com_load'"))[0][1])


def hard_rows() -> list[tuple[Any, ...]]:
    longest = max(len(values) for _, values in HARD_COLUMNS.values())
    return [(n, *(values[n % len(values)] for _, values in HARD_COLUMNS.values())) for n in range(longest)]


def exact(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Rows with floats by repr (so -0.0 differs from 0.0) and every value's type."""
    return [tuple((type(v).__name__, repr(v) if isinstance(v, float) else v) for v in row) for row in rows]


async def stored(url: str, *, load_data: bool, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    async with connect(url) as conn:
        assert isinstance(conn, MySQLConnection)
        conn.load_data = load_data
        table = f"hard_{int(load_data)}"
        columns = ", ".join(f"{name} {ddl}" for name, (ddl, _) in HARD_COLUMNS.items())
        await conn.execute(f"CREATE TABLE {table} (n INT PRIMARY KEY, {columns}) DEFAULT CHARSET=utf8mb4 "
                           "COLLATE=utf8mb4_bin")
        before = await loads(conn)
        async with conn.transaction():
            await conn.write(table, ["n", *HARD_COLUMNS], rows)
        assert await loads(conn) - before == (1 if load_data else 0)
        return await conn.fetch(f"SELECT * FROM {table} ORDER BY n")


async def test_hard_values_read_back_as_the_insert_path_stores_them(mysql_url: str) -> None:
    rows = hard_rows()
    by_insert = await stored(mysql_url, load_data=False, rows=rows)
    by_load = await stored(mysql_url, load_data=True, rows=rows)
    assert len(by_load) == len(rows)
    assert exact(by_load) == exact(by_insert)


async def stored_as_lines(url: str, *, load_data: bool, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """``stored``, the rows encoded as lines first (``line_writer``: an import sorting a table)."""
    async with connect(url) as conn:
        assert isinstance(conn, MySQLConnection)
        table = f"lines_{int(load_data)}"
        columns = ", ".join(f"{name} {ddl}" for name, (ddl, _) in HARD_COLUMNS.items())
        await conn.execute(f"CREATE TABLE {table} (n INT PRIMARY KEY, {columns}) DEFAULT CHARSET=utf8mb4 "
                           "COLLATE=utf8mb4_bin")
        writer = conn.line_writer(table, await conn.columns(table))
        assert writer is not None
        lines = writer.encode(rows)
        conn.load_data = load_data  # refused after the lines were made: they go by INSERT
        before = await loads(conn)
        async with conn.transaction():
            await writer.write(lines)
        assert await loads(conn) - before == (1 if load_data else 0)
        return await conn.fetch(f"SELECT * FROM {table} ORDER BY n")


async def test_hard_values_as_lines_read_back_as_the_insert_path_stores_them(mysql_url: str) -> None:
    rows = hard_rows()
    by_insert = await stored(mysql_url, load_data=False, rows=rows)
    for load_data in (True, False):
        assert exact(await stored_as_lines(mysql_url, load_data=load_data, rows=rows)) == exact(by_insert)


async def test_a_table_with_a_bytes_column_gets_no_line_writer(mysql_url: str) -> None:
    async with connect(mysql_url) as conn:
        await conn.execute("CREATE TABLE t (id INT PRIMARY KEY, b LONGBLOB)")
        assert conn.line_writer("t", await conn.columns("t")) is None


async def test_a_batch_streamed_in_many_pieces_is_one_load(mysql_url: str) -> None:
    rows = [(n, HARD_TEXT[n % len(HARD_TEXT)][:100], n / 7) for n in range(1000)]
    async with connect(mysql_url) as conn:
        assert isinstance(conn, MySQLConnection)
        await conn.execute("CREATE TABLE t (n INT PRIMARY KEY, s TEXT, f DOUBLE)")
        before = await loads(conn)
        async with conn.transaction():
            await conn.write("t", ["n", "s", "f"], rows)
        assert await loads(conn) - before == 1
        assert exact(await conn.fetch("SELECT * FROM t ORDER BY n")) == exact(rows)


async def test_the_hard_dataset_reads_back_the_same_both_ways(tmp_path: Path) -> None:
    data = build_dataset()
    async for by_load in make_database("mysql", tmp_path, "load"):
        async for by_insert in make_database("mysql", tmp_path, "insert"):
            for url, load_data in ((by_load, True), (by_insert, False)):
                async with connect(url) as conn:
                    assert isinstance(conn, MySQLConnection)
                    conn.load_data = load_data
                    before = await loads(conn)
                    await load_dataset(conn, data)
                    assert (await loads(conn) > before) is load_data
            assert exact_tables(await raw_tables(by_load)) == exact_tables(await raw_tables(by_insert))
            assert_same(data, await read_all(by_load))


async def raw_tables(url: str) -> dict[str, list[tuple[Any, ...]]]:
    async with connect(url) as conn:
        return {name: await conn.fetch(f"SELECT * FROM `{name}` ORDER BY `{TABLES[name].primary_key[0]}`")
                for name in TABLES}


def exact_tables(tables: dict[str, list[tuple[Any, ...]]]) -> dict[str, list[tuple[Any, ...]]]:
    return {name: exact(rows) for name, rows in tables.items()}


async def test_duplicate_key_fails_with_the_insert_error_and_changes_nothing(mysql_url: str) -> None:
    async with connect(mysql_url) as conn:
        await conn.execute("CREATE TABLE t (id INT PRIMARY KEY, s TEXT)")
        async with conn.transaction():
            await conn.write("t", ["id", "s"], [(1, "one"), (2, "two")])
        for batch in ([(3, "three"), (1, "again")], [(4, "four"), (4, "twice")]):
            with pytest.raises(IntegrityFailure, match="^MySQL: table t: Duplicate entry '[14]' for key 'PRIMARY'$"):
                async with conn.transaction():
                    await conn.write("t", ["id", "s"], [(10, "earlier batch")])
                    await conn.write("t", ["id", "s"], batch)
            assert await conn.fetch("SELECT * FROM t ORDER BY id") == [(1, "one"), (2, "two")]


async def test_duplicate_key_in_lines_fails_with_the_insert_error_and_changes_nothing(mysql_url: str) -> None:
    async with connect(mysql_url) as conn:
        await conn.execute("CREATE TABLE t (id INT PRIMARY KEY, s TEXT)")
        writer = conn.line_writer("t", await conn.columns("t"))
        assert writer is not None
        async with conn.transaction():
            await writer.write(writer.encode([(1, "one"), (2, "two")]))
        with pytest.raises(IntegrityFailure, match="^MySQL: table t: Duplicate entry '1' for key 'PRIMARY'$"):
            async with conn.transaction():
                await writer.write(writer.encode([(3, "three"), (1, "again")]))
        assert await conn.fetch("SELECT * FROM t ORDER BY id") == [(1, "one"), (2, "two")]


@pytest.mark.parametrize("ddl, value", [("VARCHAR(3)", "long"), ("INT", 2**40), ("TEXT", "bad \udcff surrogate")])
async def test_bad_values_in_lines_fail_and_change_nothing(mysql_url: str, ddl: str, value: Any) -> None:
    """The server's error for the value (from the replay by INSERT), as the INSERT path raises it."""
    messages = []
    async with connect(mysql_url) as conn:
        assert isinstance(conn, MySQLConnection)
        await conn.execute(f"CREATE TABLE t (id INT PRIMARY KEY, c {ddl})")
        writer = conn.line_writer("t", await conn.columns("t"))
        assert writer is not None
        for write in (lambda: conn.write("t", ["id", "c"], [(1, None), (2, value)]),
                      lambda: writer.write(writer.encode([(1, None), (2, value)]))):
            with pytest.raises(DatabaseError) as caught:
                async with conn.transaction():
                    await write()
            messages.append(str(caught.value))
            assert await conn.fetch("SELECT count(*) FROM t") == [(0,)]
    assert messages[0] == messages[1]


@pytest.mark.parametrize("ddl, value", [("VARCHAR(3)", "long"), ("DOUBLE", float("inf")), ("INT", 2**40),
                                        ("TEXT", "bad \udcff surrogate")])
async def test_bad_values_fail_as_on_the_insert_path(mysql_url: str, ddl: str, value: Any) -> None:
    """Values the checks before the driver would catch, sent anyway: LOAD DATA only warns; the
    batch is replayed by INSERT, whose error is the one raised."""
    messages = []
    async with connect(mysql_url) as conn:
        assert isinstance(conn, MySQLConnection)
        await conn.execute(f"CREATE TABLE t (id INT PRIMARY KEY, c {ddl})")
        for load_data in (False, True):
            conn.load_data = load_data
            with pytest.raises(Exception) as caught:
                async with conn.transaction():
                    await conn.write("t", ["id", "c"], [(1, None), (2, value)])
            messages.append((type(caught.value), str(caught.value)))
            assert await conn.fetch("SELECT count(*) FROM t") == [(0,)]
    assert messages[0] == messages[1]


async def test_import_of_an_existing_key_names_the_line_and_changes_nothing(mysql_url: str, tmp_path: Path) -> None:
    async with connect(mysql_url) as conn:
        await load_dataset(conn, build_dataset(4))
    path = tmp_path / "dup.ndjson"
    path.write_text('{"metadata": {"format": "ndjson"}}\n{"table": "teams", "data": {"team_id": "team-1", '
                    '"name": "n", "slug": "other", "created_at": "2024-01-01T00:00:00"}}\n')
    before = await read_all(mysql_url)
    result = run("import-data", str(path), "--database-url", mysql_url, "--table", "teams", "--no-truncate")
    assert result.returncode == IntegrityFailure.exit_code
    assert_clean_failure(result, "table teams: Duplicate entry 'team-1'")
    assert_same(before, await read_all(mysql_url))


async def test_a_server_refusing_local_infile_gets_inserts(mysql_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """local_infile is global: switched off for as short a time as possible, restored whatever happens."""
    async with connect(MYSQL_ADMIN_URL) as admin:
        was = (await admin.fetch("SELECT @@GLOBAL.local_infile"))[0][0]
        async with connect(mysql_url) as conn:
            assert isinstance(conn, MySQLConnection)
            await conn.execute("CREATE TABLE t (id INT PRIMARY KEY, s TEXT)")
            caplog.set_level(logging.INFO, logger="memoria_stream.drivers.mysql")
            try:
                await admin.execute("SET GLOBAL local_infile = 0")
                async with conn.transaction():
                    await conn.write("t", ["id", "s"], [(1, "a\tb")])
                    await conn.write("t", ["id", "s"], [(2, "c")])
            finally:
                await admin.execute(f"SET GLOBAL local_infile = {int(was)}")
            assert not conn.load_data
            assert await conn.fetch("SELECT * FROM t ORDER BY id") == [(1, "a\tb"), (2, "c")]
    refusals = [r for r in caplog.records if "refuses LOAD DATA LOCAL" in r.getMessage()]
    assert len(refusals) == 1


async def test_outside_a_transaction_rows_go_by_insert(mysql_url: str) -> None:
    async with connect(mysql_url) as conn:
        assert isinstance(conn, MySQLConnection)
        await conn.execute("CREATE TABLE t (id INT PRIMARY KEY)")
        before = await loads(conn)
        await conn.write("t", ["id"], [(1,), (2,)])
        assert await loads(conn) == before
        assert await conn.fetch("SELECT count(*) FROM t") == [(2,)]


def test_text_escapes_exactly_the_separators() -> None:
    rows = [("a\tb\\c\nd\re\x00f", None, 1.5, True, b"\x00\xff"), ("é\x1f\n", "x", -0.0, None, None)]
    data, hex_columns = load_text(rows) or (b"", set())
    assert data == ("a\\tb\\\\c\\nd\\re\\0f\t\\N\t1.5\t1\t00ff\n"
                    "é\x1f\\n\tx\t-0.0\t\\N\t\\N\n").encode()
    assert hex_columns == {4}


def test_random_text_unescapes_to_itself() -> None:
    """What the server's reader does with our fields (ESCAPED BY '\\'), done here on random texts."""
    rng = random.Random(5)
    alphabet = "ab\\\x00\n\r\t\x1aNé😀0Zn\x1f"
    for _ in range(3000):
        texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12))) for _ in range(rng.randint(1, 5))]
        fields = column_fields(texts)
        assert fields is not None
        assert all(b"\t" not in f and b"\n" not in f for f in fields)
        assert [unescape(f) for f in fields] == texts


def unescape(field: bytes) -> str:
    specials = {"0": "\x00", "n": "\n", "r": "\r", "t": "\t", "b": "\b", "Z": "\x1a"}
    text, out, i = field.decode(), [], 0
    while i < len(text):
        if text[i] == "\\":
            i += 1
            out.append(specials.get(text[i], text[i]))
        else:
            out.append(text[i])
        i += 1
    return "".join(out)


def test_kinds_of_value_the_text_does_not_carry_go_to_insert() -> None:
    assert column_fields([1, "mixed"]) is None
    assert column_fields([object()]) is None
    assert load_text([(1, [1, 2])]) is None
    assert column_fields([None, None]) == [b"\\N", b"\\N"]


def test_lines_read_back_as_the_text_of_each_value() -> None:
    """What a batch of lines goes to INSERT as: each field's text, NULL as None; random texts too."""
    rng = random.Random(7)
    alphabet = "ab\\\x00\n\r\t\x1aNé😀0Zn\x1f"
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12))) for _ in range(2000)]
    rows = [(text, n, n / 7, n % 2 == 0, DATES[n % len(DATES)], None) for n, text in enumerate(texts)]
    lines = load_lines(rows)
    assert all(b"\n" not in line for line in lines)
    assert rows_of_lines(lines) == [(text, str(n), repr(n / 7), "1" if n % 2 == 0 else "0", str(DATES[n % len(DATES)]),
                                     None) for n, text in enumerate(texts)]


def test_lines_take_a_column_that_mixes_kinds_and_refuse_others() -> None:
    assert load_lines([(1, "a"), (2.5, None), (True, "b")]) == [b"1\ta", b"2.5\t\\N", b"1\tb"]
    with pytest.raises(TypeError):
        load_lines([(b"bytes",)])
    with pytest.raises(TypeError):
        load_lines([([1, 2],)])
