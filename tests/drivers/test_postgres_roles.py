"""A PostgreSQL login without the privilege for replica mode (a managed database's usual user) still
imports Memoria's own JSON, whose tables come children first: FK checks are deferred to COMMIT."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from memoria_stream.drivers import connect
from memoria_stream.transfer.files import export_data, import_data
from memoria_stream.errors import DatabaseError, IntegrityFailure

from support.databases import PG_ADMIN_URL, _unavailable
from support.helpers import assert_same, read_all
from support.samples import expected_from_sample_db


@pytest.fixture
async def unprivileged_url() -> str:
    role, database = f"ms_user_{uuid.uuid4().hex[:8]}", f"ms_{uuid.uuid4().hex[:12]}"
    try:
        async with connect(PG_ADMIN_URL) as admin:
            await admin.execute(f"CREATE ROLE {role} LOGIN NOSUPERUSER")
            await admin.execute(f"CREATE DATABASE {database} OWNER {role}")
    except DatabaseError as exc:
        _unavailable("postgres", exc)
    host = PG_ADMIN_URL.split("@", 1)[1].rsplit("/", 1)[0]
    yield f"postgresql://{role}@{host}/{database}"
    async with connect(PG_ADMIN_URL) as admin:
        await admin.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        await admin.execute(f"DROP ROLE IF EXISTS {role}")


async def test_children_first_json_imports_without_replica_privilege(
        unprivileged_url: str, samples: Path, tmp_path: Path) -> None:
    async with connect(unprivileged_url) as conn:  # the premise: this user may not use replica mode
        with pytest.raises(DatabaseError, match="permission denied"):
            async with conn.transaction():
                await conn.execute("SET LOCAL session_replication_role = replica")
    report = await import_data(samples / "memoria-sample.json", database_url=unprivileged_url)
    assert report.total_rows == 600
    assert_same(expected_from_sample_db(samples / "memoria-sample.db"), await read_all(unprivileged_url))
    # Re-importing children-first input over data would cascade: refused, nothing changed.
    with pytest.raises(IntegrityFailure, match="cascade"):
        await import_data(samples / "memoria-sample.json", database_url=unprivileged_url)
    assert_same(expected_from_sample_db(samples / "memoria-sample.db"), await read_all(unprivileged_url))
    # Our own files list parents first: they re-import over the data.
    dump = tmp_path / "ours.ndjson"
    await export_data(dump, database_url=unprivileged_url)
    again = await import_data(dump, database_url=unprivileged_url)
    assert again.total_rows == 600
    assert_same(expected_from_sample_db(samples / "memoria-sample.db"), await read_all(unprivileged_url))
