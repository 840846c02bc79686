"""Add the timestamp column to long_term_memory and spatial_metadata, back-filled with the current time."""

from __future__ import annotations

from memoria_stream.migrations.helpers import ensure_columns, open_target, run_script


async def main() -> None:
    async with open_target() as conn:
        for table in ("long_term_memory", "spatial_metadata"):
            await ensure_columns(conn, table, ["timestamp"])


if __name__ == "__main__":
    run_script(main)
