"""The FK check that closes every load: a server told to read the parents' keys in one scan (MariaDB,
where its own plan probes them row by row) reaches the same verdict, and only where the scan pays."""

from __future__ import annotations

from pathlib import Path

import pytest

from memoria_stream.drivers import connect
from memoria_stream.drivers.base import KeyScan
from memoria_stream.errors import IntegrityFailure
from memoria_stream.model.catalog import get_table
from memoria_stream.transfer.load import check_foreign_keys, key_scan_pays, row_estimates
from memoria_stream.transfer.schema import live_tables

from support.copy_support import seed
from support.databases import make_database
from support.dataset import build_dataset

SCAN = KeyScan(statement_prefix="SET STATEMENT x = 1 FOR ", table_hint=" FORCE INDEX (PRIMARY)", row_estimates_sql="-")
CHILD = "short_term_memory"  # its parents: chat_history, teams, workspaces
_CHILD_TABLE = get_table(CHILD)
assert _CHILD_TABLE is not None
FKS = _CHILD_TABLE.foreign_keys


@pytest.mark.parametrize("chats, scanned", [(1000, True), (1001, False)])
def test_a_key_scan_is_chosen_only_where_no_parent_is_ten_times_the_child(chats: int, scanned: bool) -> None:
    estimates = {CHILD: 100, "chat_history": chats, "teams": 3, "workspaces": 3}
    assert (key_scan_pays(SCAN, estimates, CHILD, FKS) is SCAN) is scanned


@pytest.mark.parametrize("missing", [CHILD, "workspaces"])
def test_no_key_scan_where_a_table_has_no_estimate(missing: str) -> None:
    estimates = {CHILD: 100, "chat_history": 100, "teams": 3, "workspaces": 3}
    del estimates[missing]
    assert key_scan_pays(SCAN, estimates, CHILD, FKS) is None


def test_no_key_scan_where_the_server_has_none() -> None:
    assert key_scan_pays(None, {CHILD: 100, "chat_history": 1, "teams": 1, "workspaces": 1}, CHILD, FKS) is None


async def test_the_check_by_key_scan_passes_whole_data_and_names_a_dangling_value(tmp_path: Path) -> None:
    async for url in make_database("mysql", tmp_path, "fk-check"):
        await seed(url, build_dataset(12))
        async with connect(url) as conn:
            mariadb = "mariadb" in str((await conn.fetch("SELECT VERSION()"))[0][0]).lower()
            assert (conn.capabilities.key_scan is not None) is mariadb
            live = await live_tables(conn)
            async with conn.transaction(foreign_keys=False):
                scan = key_scan_pays(conn.capabilities.key_scan, await row_estimates(conn), CHILD, FKS)
                assert (scan is not None) is mariadb  # the path under test is the one taken
                await check_foreign_keys(conn, list(live), live)  # the seeded data is whole
                await conn.execute(f"UPDATE {CHILD} SET chat_id = 'nowhere' ORDER BY memory_id LIMIT 1")
                with pytest.raises(IntegrityFailure, match=f"table {CHILD}, column chat_id: value 'nowhere' has no row"):
                    await check_foreign_keys(conn, [CHILD], live)
