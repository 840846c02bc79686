"""``Connection.fingerprints``: what ``copy --sync`` remembers rows by, on every backend."""

from __future__ import annotations

from typing import Any

from memoria_stream.drivers import connect
from memoria_stream.drivers.base import Connection
from memoria_stream.transfer.keyspool import summary_of

from support.copy_support import seed
from support.dataset import build_dataset

TABLE, KEY = "clusters", "id"


async def _prints(conn: Connection, **options: Any) -> dict[Any, bytes]:
    found: dict[Any, bytes] = {}
    async for keys, prints in conn.fingerprints(TABLE, KEY, await conn.columns(TABLE), batch_rows=3, **options):
        assert len(keys) == len(prints) <= 3
        found.update(zip(keys, prints))
    return found


async def test_a_print_moves_with_its_row_only_and_shares_cover_every_row_once(db_url: str) -> None:
    data = build_dataset()
    await seed(db_url, {"clusters": data["clusters"]})
    ids = sorted(row["id"] for row in data["clusters"])
    async with connect(db_url) as conn:
        before = await _prints(conn)
        assert sorted(before) == ids and len(set(before.values())) == len(ids)
        assert await _prints(conn) == before  # the same rows, the same prints
        halves = [await _prints(conn, share=(i, 2)) for i in range(2)]
        assert not set(halves[0]) & set(halves[1]) and {**halves[0], **halves[1]} == before
        assert await _prints(conn, keys=ids[:2]) == {k: before[k] for k in ids[:2]}

        q = conn.capabilities.quote
        slot = conn.capabilities.placeholders(1)
        await conn.execute(f"UPDATE {q(TABLE)} SET {q('weight')} = 0.5000001 WHERE {q(KEY)} = {slot}", ids[0])
        await conn.execute(f"UPDATE {q(TABLE)} SET {q('total_chars')} = 987654 WHERE {q(KEY)} = {slot}", ids[1])
        after = await _prints(conn)
        assert {k for k in ids if after[k] != before[k]} == {ids[0], ids[1]}


async def test_a_server_summary_equals_the_summary_of_the_prints_it_sends(db_url: str) -> None:
    data = build_dataset()
    await seed(db_url, {"clusters": data["clusters"]})
    async with connect(db_url) as conn:
        summary = await conn.fingerprint_summary(TABLE, KEY, await conn.columns(TABLE))
        if conn.capabilities.fingerprints_in_client:
            assert summary is None  # hashed here anyway: nothing to save
            return
        prints = await _prints(conn)
        assert summary == summary_of(list(prints), list(prints.values())) and summary[0] == len(data["clusters"])
        q, slot = conn.capabilities.quote, conn.capabilities.placeholders(1)
        await conn.execute(f"UPDATE {q(TABLE)} SET {q('weight')} = 0.25 WHERE {q(KEY)} = {slot}", min(prints))
        assert await conn.fingerprint_summary(TABLE, KEY, await conn.columns(TABLE)) != summary
