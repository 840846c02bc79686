"""Where one memoria-stream path spends its time: the top functions by own time, as text.

    python benchmarks/profile_path.py copy-postgresql --rows 100000 [--out profile.txt] [--top 30]
    python benchmarks/run.py --rows 100000 --profile copy-postgresql      # the same

The path runs exactly as in run.py (same cached database, same fresh target), but under
pyinstrument, a sampling profiler (1 ms), so the wall time printed carries its overhead. "Own time"
is pyinstrument's self time per function, written through the stdlib's pstats (sorted by tottime;
its call counts mean nothing for a sampler). A path that reads the NDJSON file gets it from an
unprofiled export first.
"""

from __future__ import annotations

import argparse
import pstats
import shutil
import sys
from pathlib import Path

from harness import ROOT
from run import STREAM_STEPS, new_bench


def _short(filename: str) -> str:
    """A file name relative to the project or to site-packages, so the table stays narrow."""
    stdlib = f"/lib/python{sys.version_info.major}.{sys.version_info.minor}/"
    for marker in ("/site-packages/", f"{ROOT}/", stdlib):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


def top_functions(stats_file: Path, top: int) -> str:
    """The ``top`` functions by own time, with their share of all samples and their cumulative time.
    (``<built-in>:0(epoll.poll)`` is the event loop waiting: for the server, or for the disk.)"""
    raw = pstats.Stats(str(stats_file)).stats  # type: ignore[attr-defined]
    total = sum(own for _, _, own, _, _ in raw.values()) or 1.0
    ranked = sorted(raw.items(), key=lambda item: item[1][2], reverse=True)[:top]
    lines = [f"{'own s':>7} {'own %':>6} {'cum s':>7}  function (file:line)"]
    for (filename, line, function), (_, _, own, cumulative, _) in ranked:
        lines.append(f"{own:>7.3f} {own / total:>6.1%} {cumulative:>7.3f}  {function} ({_short(filename)}:{line})")
    return "\n".join(lines) + "\n"


def profile(name: str, rows: int, seed: int, out: Path, top: int) -> int:
    bench = new_bench(rows, seed, keep=False)
    try:
        if name.startswith("import-"):
            STREAM_STEPS["export-ndjson"](bench)  # the file every import reads; not profiled
        bench.profile = bench.workdir / "profile.pstats"
        result = STREAM_STEPS[name](bench)
        if not result.ok or not bench.profile.exists():
            print(f"{result.path} failed: {result.note}", file=sys.stderr)
            return 1
        header = (f"{result.path}, {bench.rows} rows, under pyinstrument: wall {result.seconds:.2f} s, "
                  f"CPU {result.cpu_seconds:.2f} s, peak RSS {result.peak_rss_mb:.1f} MB\n"
                  f"Top {top} functions by own time (pyinstrument's self time; all samples = 100 %):\n\n")
        out.write_text(header + top_functions(bench.profile, top))
    finally:
        shutil.rmtree(bench.workdir, ignore_errors=True)
    print(f"wrote {out}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", choices=sorted(STREAM_STEPS), metavar="PATH_NAME", help=", ".join(STREAM_STEPS))
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, help="default: profile-PATH_NAME.txt here")
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args(argv)
    out = args.out or Path(f"profile-{args.path}.txt")
    return profile(args.path, args.rows, args.seed, out, args.top)


if __name__ == "__main__":
    sys.exit(main())
