"""memoria-stream: async streaming ETL for Memoria's database."""

from __future__ import annotations

__version__ = "0.1.0"
