"""Add the y_centroid and z_centroid columns to clusters."""

from __future__ import annotations

from memoria_stream.migrations.helpers import ensure_columns, open_target, run_script


async def main() -> None:
    async with open_target() as conn:
        await ensure_columns(conn, "clusters", ["y_centroid", "z_centroid"])


if __name__ == "__main__":
    run_script(main)
