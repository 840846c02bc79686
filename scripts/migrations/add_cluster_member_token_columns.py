"""Alias of add_cluster_member_counts (Memoria shipped the same migration twice)."""

from __future__ import annotations

import runpy
from pathlib import Path

if __name__ == "__main__":
    # One implementation: run the original script as if it had been started itself.
    runpy.run_path(str(Path(__file__).with_name("add_cluster_member_counts.py")), run_name="__main__")
