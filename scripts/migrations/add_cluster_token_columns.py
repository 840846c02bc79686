"""Add the total_tokens and total_chars counters (default 0) to clusters."""

from __future__ import annotations

from memoria_stream.migrations.helpers import ensure_columns, open_target, run_script


async def main() -> None:
    async with open_target() as conn:
        await ensure_columns(conn, "clusters", ["total_tokens", "total_chars"])


if __name__ == "__main__":
    run_script(main)
