"""Widen Memoria-made MySQL columns to keep every value: DATETIME(6), DOUBLE and LONGTEXT.

Memoria's MySQL DDL declares DATETIME (no fractional seconds), FLOAT (single precision) and TEXT
(64 KiB), so an import into it would change values; memoria-stream refuses such an import until the
columns are widened (or --allow-lossy is given). Every row, NULL-ability and default is kept; columns
already wide are left alone, and SQLite and PostgreSQL need nothing.
"""

from __future__ import annotations

from memoria_stream.model.catalog import EXPORT_ORDER
from memoria_stream.migrations.helpers import open_target, run_script, say, widen_columns


async def main() -> None:
    async with open_target() as conn:
        widened = [table for table in EXPORT_ORDER if await widen_columns(conn, table)]
        if not widened:
            say("every column already keeps every value")


if __name__ == "__main__":
    run_script(main)
