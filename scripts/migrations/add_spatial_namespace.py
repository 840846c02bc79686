"""Add spatial_metadata.namespace (NOT NULL, default 'default'), back-fill it, then index it."""

from __future__ import annotations

from memoria_stream.migrations.helpers import ensure_columns, open_target, run_script, say, step


async def main() -> None:
    async with open_target() as conn:
        # The default is a literal in the DDL (Memoria bound it as a parameter, which SQLite rejects);
        # the index comes after the column, inside ensure_columns.
        await ensure_columns(conn, "spatial_metadata", ["namespace"])
        q = conn.capabilities.quote
        async with step(conn, "back-fill spatial_metadata.namespace"):
            await conn.execute(
                f"UPDATE {q('spatial_metadata')} SET {q('namespace')} = 'default' "
                f"WHERE {q('namespace')} IS NULL OR {q('namespace')} = ''")
        say("spatial_metadata: empty namespaces set to 'default'")


if __name__ == "__main__":
    run_script(main)
