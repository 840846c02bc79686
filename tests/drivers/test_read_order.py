"""``read(order_by=…)`` returns rows sorted by those columns on every backend (copy reads in primary
key order for a target that stores rows in that order)."""

from __future__ import annotations

from memoria_stream.drivers import connect


async def test_read_in_key_order(db_url: str) -> None:
    keys = ["m", "b", "z", "a", "c", "aa"]  # ASCII, one case: sorted alike by every collation
    async with connect(db_url) as conn:
        q = conn.capabilities.quote
        await conn.execute(f"CREATE TABLE {q('t')} ({q('k')} VARCHAR(10) PRIMARY KEY, {q('n')} INTEGER)")
        async with conn.transaction():
            await conn.write("t", ["k", "n"], [(k, i) for i, k in enumerate(keys)])
        async with conn.snapshot():
            by_key = [row async for batch in conn.read("t", ["n", "k"], batch_rows=2, order_by=["n"]) for row in batch]
            assert [tuple(r) for r in by_key] == [(i, k) for i, k in enumerate(keys)]
            ordered = [row[0] async for batch in conn.read("t", ["k"], batch_rows=3, order_by=["k"]) for row in batch]
    assert ordered == sorted(keys)
