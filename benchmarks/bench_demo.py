"""Benchmark: ``make demo``'s main job — ``crs-risk demo --out DIR`` from nothing.

Target (issue): under 3 minutes after set-up on 2 cores. Runs the real command in a fresh
process on a fresh folder (synthesise the n=118 cohort, train the ``quickstart`` preset
(``training/presets``) — every model at every landmark with nested CV, plots, SHAP summaries,
model cards — into a new SQLite store, register the champions, print the leaderboard), and
records wall time, CPU time and peak RSS of the whole process, plus the machine's load
average (the project machine is shared: CPU time is the figure that does not depend on the
neighbours).

Usage: ``python benchmarks/bench_demo.py [--jobs 2] [--keep DIR] [--out results_demo.json]``
(``make demo`` runs ``crs-risk demo --jobs 2``: both cores.)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET_S = 180.0


def run(out_dir: Path, jobs: int) -> dict:
    cmd = [str(Path(sys.executable).with_name("crs-risk")), "demo", "--out", str(out_dir)]
    if jobs != 1:
        cmd += ["--jobs", str(jobs)]
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    load_before = os.getloadavg()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"crs-risk demo failed with exit code {proc.returncode}")
    registered = [ln for ln in proc.stdout.splitlines() if ln.startswith("registered ")]
    return {
        "command": "crs-risk demo --out DIR" + (f" --jobs {jobs}" if jobs != 1 else ""),
        "wall_s": round(wall, 1),
        "cpu_s": round((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), 1),
        "peak_rss_mb": round(after.ru_maxrss / 1024, 0),
        "registered_champions": len(registered),
        "target_s": TARGET_S,
        "within_target": wall < TARGET_S,
        "cpus": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in load_before],
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=2, help="crs-risk demo --jobs (make demo: 2)")
    ap.add_argument("--keep", type=Path, help="demo folder to keep (default: a temporary one)")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results_demo.json")
    args = ap.parse_args(argv)
    if args.keep:
        result = run(args.keep, args.jobs)
    else:
        with tempfile.TemporaryDirectory(prefix="crs-bench-demo-") as tmp:
            result = run(Path(tmp) / "demo", args.jobs)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(
        f"crs-risk demo: {result['wall_s']} s wall, {result['cpu_s']} s CPU, "
        f"{result['peak_rss_mb']:.0f} MB peak RSS, {result['registered_champions']} champions "
        f"(target < {TARGET_S:.0f} s; load average before {result['load_average_before'][0]})"
    )
    print(f"written {args.out}")
    if not result["within_target"]:
        print("warning: slower than the target (is the machine shared? see cpu_s)")


if __name__ == "__main__":
    main()
