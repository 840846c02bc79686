"""Add the embedding JSON column to short_term_memory and long_term_memory."""

from __future__ import annotations

from memoria_stream.migrations.helpers import ensure_columns, open_target, run_script


async def main() -> None:
    async with open_target() as conn:
        for table in ("short_term_memory", "long_term_memory"):
            await ensure_columns(conn, table, ["embedding"])


if __name__ == "__main__":
    run_script(main)
