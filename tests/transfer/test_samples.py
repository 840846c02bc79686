"""Files written by Memoria itself import into every backend with every value of the source database."""

from __future__ import annotations

from pathlib import Path

import pytest

from memoria_stream.transfer.files import import_data

from support.samples import expected_from_sample_db
from support.helpers import assert_same, read_all


@pytest.mark.parametrize("sample", ["memoria-sample.json", "memoria-sample.ndjson"])
async def test_memoria_written_file_imports_exactly(db_url: str, samples: Path, sample: str) -> None:
    expected = expected_from_sample_db(samples / "memoria-sample.db")
    report = await import_data(samples / sample, database_url=db_url)
    assert report.total_rows == 600
    assert_same(expected, await read_all(db_url))
