"""The command line builds its parser without the engine: a command loads only what it runs."""

from __future__ import annotations

import subprocess
import sys
import textwrap

# Modules no parser needs: the engines behind every command, the drivers' libraries, the API's
# server and rich (drawn only on a terminal).
_HEAVY = ("memoria_stream.transfer.files", "memoria_stream.transfer.export", "memoria_stream.transfer.load",
          "memoria_stream.transfer.copy", "memoria_stream.transfer.sync", "memoria_stream.transfer.preflight",
          "memoria_stream.transfer.verify", "memoria_stream.transfer.resume", "memoria_stream.transfer.worker",
          "aiosqlite", "asyncpg", "aiomysql", "starlette", "uvicorn", "rich")

_PROBE = textwrap.dedent("""
    import sys
    from memoria_stream.cli.main import build_parser
    build_parser().parse_args(sys.argv[1:])
    print(" ".join(sorted(m for m in sys.modules if m.split(".")[0] in {"aiosqlite", "asyncpg", "aiomysql",
                                                                      "starlette", "uvicorn", "rich"}
                          or m.startswith("memoria_stream."))))
""")


def _loaded(*argv: str) -> set[str]:
    done = subprocess.run([sys.executable, "-c", _PROBE, *argv], capture_output=True, text=True, check=True)
    return set(done.stdout.split())


def test_parsing_a_command_loads_no_engine() -> None:
    for argv in (["import-data", "dump.ndjson", "-q"], ["export-data", "-", "--format", "ndjson"],
                 ["copy", "sqlite:///a.db", "postgresql://h/db"], ["verify", "dump.ndjson"]):
        loaded = _loaded(*argv)
        assert "memoria_stream.cli.transfer" in loaded  # the probe sees the modules it loads
        assert not loaded & set(_HEAVY), (argv, sorted(loaded & set(_HEAVY)))
