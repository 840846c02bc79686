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
import io
import pstats
import shutil
import sys
from pathlib import Path

from run import STREAM_STEPS, new_bench


def top_functions(stats_file: Path, top: int) -> str:
    text = io.StringIO()
    stats = pstats.Stats(str(stats_file), stream=text)
    stats.strip_dirs().sort_stats("tottime").print_stats(top)
    return text.getvalue()


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
                  f"Top {top} functions by own time (tottime; ncalls are samples, not calls):\n")
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
