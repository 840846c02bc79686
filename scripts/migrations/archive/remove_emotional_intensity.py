"""Drop the legacy emotional_intensity column from short_term_memory and long_term_memory."""

from __future__ import annotations

from memoria_stream.migrations.helpers import drop_column_if_present, open_target, run_script, say


async def main() -> None:
    async with open_target() as conn:
        for table in ("short_term_memory", "long_term_memory"):
            if not await drop_column_if_present(conn, table, "emotional_intensity"):
                say(f"{table}: no emotional_intensity column")


if __name__ == "__main__":
    run_script(main)
