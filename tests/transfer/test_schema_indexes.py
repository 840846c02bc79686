"""Indexes of the tables an import created are built after its load, where DDL commits on its own
(MySQL) on a second connection too; a user allowed only one connection still gets every index."""

from __future__ import annotations

import uuid
from pathlib import Path

from memoria_stream.drivers import connect
from memoria_stream.model.catalog import get_table
from memoria_stream.transfer.files import export_data, import_data

from support.databases import make_database
from support.dataset import build_dataset, load_dataset
from support.helpers import assert_same, read_all


async def test_a_user_with_one_connection_gets_every_index(tmp_path: Path) -> None:
    data = build_dataset()
    source = f"sqlite:///{tmp_path / 'source.db'}"
    async with connect(source) as conn:
        await load_dataset(conn, data)
    await export_data(tmp_path / "dump.ndjson", database_url=source)
    async for admin_url in make_database("mysql", tmp_path):
        database = admin_url.rsplit("/", 1)[1]
        user = f"ms_one_{uuid.uuid4().hex[:8]}"
        async with connect(admin_url) as admin:
            await admin.execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY 'pw' WITH MAX_USER_CONNECTIONS 1")
            await admin.execute(f"GRANT ALL ON `{database}`.* TO '{user}'@'%'")
            try:
                url = admin_url.replace("root@", f"{user}:pw@", 1)
                assert url != admin_url
                report = await import_data(tmp_path / "dump.ndjson", database_url=url)
                assert len(report.created_tables) == len(data)
                assert_same(data, await read_all(admin_url))
                for name in data:
                    wanted = {index.name for index in get_table(name).indexes}
                    assert wanted <= set(await admin.index_names(name)), name
            finally:
                await admin.execute(f"DROP USER '{user}'@'%'")
