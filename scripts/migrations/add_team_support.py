"""Create the teams table and add team_id (with its indexes and foreign key) to the memory tables."""

from __future__ import annotations

from memoria_stream.migrations.helpers import ensure_columns, ensure_table_shape, open_target, run_script

# memory_access_events.team_id has no foreign key in Memoria's models; the others reference teams.
TEAM_TABLES = ("chat_history", "short_term_memory", "long_term_memory", "spatial_metadata", "memory_access_events")


async def main() -> None:
    async with open_target() as conn:
        await ensure_table_shape(conn, "teams")
        for table in TEAM_TABLES:
            await ensure_columns(conn, table, ["team_id"])


if __name__ == "__main__":
    run_script(main)
