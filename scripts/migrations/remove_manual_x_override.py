"""Drop the obsolete manual_x_override column from the memory and spatial tables."""

from __future__ import annotations

from memoria_stream.migrations.helpers import drop_column_if_present, open_target, run_script, say


async def main() -> None:
    async with open_target() as conn:
        for table in ("long_term_memory", "short_term_memory", "spatial_metadata"):
            if not await drop_column_if_present(conn, table, "manual_x_override"):
                say(f"{table}: no manual_x_override column")


if __name__ == "__main__":
    run_script(main)
