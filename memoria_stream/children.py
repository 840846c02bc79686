"""Child processes of this package: plain ``python -c`` children that import it as the parent did."""

from __future__ import annotations

import os
from pathlib import Path


def child_env() -> dict[str, str]:
    """The parent's environment, with this package importable however the parent found it."""
    root = str(Path(__file__).resolve().parents[1])
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
