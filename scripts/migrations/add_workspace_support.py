"""Create workspaces and workspace_members, add workspace_id to the memory tables, one workspace per team."""

from __future__ import annotations

from memoria_stream.drivers import Connection
from memoria_stream.migrations.helpers import (
    column_names, ensure_columns, ensure_table_shape, open_target, run_script, say, step,
)

WORKSPACE_TABLES = ("chat_history", "short_term_memory", "long_term_memory", "spatial_metadata", "memory_access_events")


async def main() -> None:
    async with open_target() as conn:
        # Works on partial schemas: each table is created or completed from the catalogue
        # (workspace_members with is_agent), and back-fills skip tables that lack team_id.
        for table in ("teams", "workspaces", "workspace_members"):
            await ensure_table_shape(conn, table)
        for table in WORKSPACE_TABLES:
            await ensure_columns(conn, table, ["workspace_id"])
        await _workspace_per_team(conn)
        for table in WORKSPACE_TABLES:
            await _backfill_workspace_id(conn, table)


async def _workspace_per_team(conn: Connection) -> None:
    """One workspace per team, with the team's id; the slug falls back to the id when taken."""
    q = conn.capabilities.quote
    ws, tm = q("workspaces"), q("teams")
    async with step(conn, "create one workspace per team"):
        await conn.execute(
            f"INSERT INTO {ws} (workspace_id, name, slug, description, owner_id, team_id, created_at, updated_at) "
            f"SELECT t.team_id, COALESCE(t.name, t.team_id), "
            f"CASE WHEN EXISTS (SELECT 1 FROM {ws} w WHERE w.slug = t.slug) OR t.slug IS NULL "
            f"THEN t.team_id ELSE t.slug END, "
            f"t.description, NULL, t.team_id, t.created_at, t.updated_at FROM {tm} t "
            f"WHERE NOT EXISTS (SELECT 1 FROM {ws} w WHERE w.workspace_id = t.team_id)")
    say("workspaces: one workspace per team ensured")


async def _backfill_workspace_id(conn: Connection, table: str) -> None:
    """``workspace_id = team_id`` where it is unset and the team has its workspace."""
    if "team_id" not in await column_names(conn, table):
        say(f"{table}: no team_id column, nothing to back-fill")
        return
    q = conn.capabilities.quote
    async with step(conn, f"back-fill {table}.workspace_id"):
        await conn.execute(
            f"UPDATE {q(table)} SET workspace_id = team_id WHERE workspace_id IS NULL AND team_id IS NOT NULL "
            f"AND team_id IN (SELECT workspace_id FROM {q('workspaces')})")
    say(f"{table}: workspace_id back-filled from team_id")


if __name__ == "__main__":
    run_script(main)
