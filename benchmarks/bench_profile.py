"""Benchmark: ``crs-risk cohort profile`` of 100,000 synthetic patients.

Target (issue 17): ≤ 60 s and ≤ 6 GB. The cohort folder is written first by
``features.synth.synth_to_folder`` (Parquet; not timed); then the command runs as a user runs
it — load and validate the folder, every statistic and flag, the HTML report — in a child
process, whose wall time, CPU time and peak RSS are the figures (the parent's simulation memory
is not counted). On a shared machine the wall time follows the load: the CPU time is printed
beside it.

Usage: ``python benchmarks/bench_profile.py [--n 100000] [--seed 1] [--cohort DIR]``
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cohort", type=Path, help="profile this folder instead of a new one")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="crs-risk-bench-profile-") as tmp:
        folder = args.cohort
        if folder is None:
            from features.synth import synth_to_folder

            folder = Path(tmp) / "cohort"
            t0 = time.perf_counter()
            synth_to_folder(folder, n=args.n, seed=args.seed, fmt="parquet")
            print(
                f"cohort: {args.n:,} synthetic patients written in {time.perf_counter() - t0:.1f} s"
            )
        out = Path(tmp) / "report.html"
        cli = Path(sys.executable).with_name("crs-risk")
        load = os.getloadavg()[0]
        t0 = time.perf_counter()
        done = subprocess.run(
            [str(cli), "cohort", "profile", str(folder), "--out", str(out)],
            capture_output=True,
            text=True,
            check=False,
        )
        wall = time.perf_counter() - t0
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        peak_gib, cpu = usage.ru_maxrss / 1024**2, usage.ru_utime + usage.ru_stime
        if done.returncode != 0:
            sys.exit(f"profile failed ({done.returncode}): {done.stderr[-2000:]}")
        print("\n".join(done.stdout.splitlines()[:2]))
        print(
            f"crs-risk cohort profile: {wall:.1f} s wall ({cpu:.1f} s CPU), peak RSS "
            f"{peak_gib:.2f} GiB, report "
            f"{out.stat().st_size / 1e6:.1f} MB (targets ≤ 60 s, ≤ 6 GB; load average at start "
            f"{load:.1f} on {os.cpu_count()} cores)"
        )


if __name__ == "__main__":
    main()
