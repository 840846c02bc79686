"""The PostgreSQL server's own CPU beside wall time and the client's CPU: ``import-data`` into
PostgreSQL against the keys-only ``psql \\copy`` path, in turns.

``run.py`` counts only the client's CPU. What a load costs the server decides how far any client
can go: on two cores, the client's CPU and the server's share them. The server's CPU is read from
the postmaster's ``/proc`` entry (the CPU of the children it has reaped: each session's backend and
its parallel workers), so this works only against a server on this machine that runs as a user
whose ``/proc`` we can read, and only where nothing else uses that server meanwhile.

    cd benchmarks && ../.venv/bin/python server_cpu.py --rows 500000 --pairs 2
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path
from typing import Callable, Sequence

import anyio

import paths as p
import run
from harness import PG_ADMIN, Measurement, Result, measure
from memoria_stream.drivers import connect

# utime, stime, cutime and cstime (fields 14-17 of /proc/PID/stat) in the fields after the name,
# which begin at field 3.
_TIMES = slice(14 - 3, 17 - 3 + 1)


async def _postmaster_pid() -> int:
    async with connect(PG_ADMIN) as conn:
        data_directory = (await conn.fetch("SHOW data_directory"))[0][0]
    return int((Path(data_directory) / "postmaster.pid").read_text().split()[0])


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(map(int, fields[_TIMES])) / os.sysconf("SC_CLK_TCK")


def _measuring_server(pid: int, spent: list[float]) -> Callable[..., Measurement]:
    """``harness.measure``, also appending the server CPU that each measured command cost."""

    def measured(argv: Sequence[str], *, env: dict[str, str] | None = None, log: Path | None = None) -> Measurement:
        before = _cpu_seconds(pid)
        m = measure(argv, env=env, log=log)
        time.sleep(0.3)  # the backend exits as its session closes; the postmaster reaps it
        spent.append(_cpu_seconds(pid) - before)
        return m
    return measured


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--pairs", type=int, default=2)
    args = parser.parse_args(argv)
    spent: list[float] = []
    setattr(p, "measure", _measuring_server(anyio.run(_postmaster_pid), spent))  # what paths runs each command with
    bench = run.new_bench(args.rows, 42, False)
    steps: list[Callable[[], Result]] = [lambda: p.stream_import(bench, "postgresql"),
                                         lambda: p.pg_copy(bench, keys_only=True)]
    try:
        p.stream_export(bench, "ndjson")
        p.ceiling_dump(bench, p.DUMP_ROWID)
        print(f"| path ({args.rows} rows) | wall s | client CPU s | server CPU s |\n|---|---|---|---|")
        for pair in range(args.pairs):
            for step in steps[::-1] if pair % 2 else steps:  # each side goes first in turn
                r = step()
                print(f"| {r.path} | {r.seconds:.2f} | {r.cpu_seconds:.2f} | {spent[-1]:.2f} |", flush=True)
    finally:
        shutil.rmtree(bench.workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
