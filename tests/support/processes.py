"""Running the CLI as an operator does: a real process, its exit status and its one-line errors."""

from __future__ import annotations

import subprocess
import sys


def run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "memoria_stream", *args], input=stdin,
                          capture_output=True, timeout=300)


def assert_clean_failure(result: subprocess.CompletedProcess[bytes], *needles: str) -> str:
    err = result.stderr.decode()
    assert result.returncode != 0, err
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("memoria-stream: error: "), err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]
