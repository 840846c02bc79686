"""Rename chat_history.metadata_json to metadata (merging the two when both exist)."""

from __future__ import annotations

from memoria_stream.drivers import Connection
from memoria_stream.migrations.helpers import (
    column_names, drop_column_if_present, open_target, run_script, say, step,
)

OLD, NEW, TABLE = "metadata_json", "metadata", "chat_history"


async def main() -> None:
    async with open_target() as conn:
        columns = await column_names(conn, TABLE)
        if not columns:
            say(f"{TABLE}: table missing, nothing to rename")
        elif OLD not in columns:
            say(f"{TABLE}: {NEW} is up to date" if NEW in columns else f"{TABLE}: no {OLD} column to rename")
        elif NEW not in columns:
            await _rename(conn)
        else:
            await _merge(conn)


async def _rename(conn: Connection) -> None:
    q = conn.capabilities.quote
    async with step(conn, f"rename {TABLE}.{OLD}"):
        await conn.execute(f"ALTER TABLE {q(TABLE)} RENAME COLUMN {q(OLD)} TO {q(NEW)}")
    say(f"{TABLE}: renamed {OLD} to {NEW}")


async def _merge(conn: Connection) -> None:
    """Both columns exist: keep values already in the new one, copy the rest, drop the old one."""
    q = conn.capabilities.quote
    async with step(conn, f"copy {TABLE}.{OLD} into {NEW}"):
        await conn.execute(f"UPDATE {q(TABLE)} SET {q(NEW)} = {q(OLD)} WHERE {q(NEW)} IS NULL")
    say(f"{TABLE}: copied {OLD} into {NEW} where {NEW} was empty")
    await drop_column_if_present(conn, TABLE, OLD)


if __name__ == "__main__":
    run_script(main)
