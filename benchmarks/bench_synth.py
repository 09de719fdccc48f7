"""Scale benchmark of the synthetic cohort generator (``features.synth``).

Target (issue): n = 100,000 (≈10⁷ measurement rows) in under 60 s and under 6 GB on 2 cores;
n = 1,000,000 works given time. Each case runs in a fresh process, so wall time and peak RSS
(``resource.getrusage``) are those of the case alone:

- ``simulate``: ``features.synth.simulate`` — the frames in memory (what tests and benchmarks use);
- ``folder``: ``features.synth.synth_to_folder`` — simulate, validate (``features.io``) and write
  the cohort folder with ``truth.csv`` (what ``crs-risk cohort synth`` does).

    .venv/bin/python benchmarks/bench_synth.py [--n 100000] [--format parquet] [--million]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

TARGET_S = 60.0
TARGET_GB = 6.0


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # Linux reports KiB


def worker(case: str, n: int, seed: int, fmt: str) -> dict[str, float | str | int]:
    """Run one case in this process and return its figures."""
    from features.synth import simulate, synth_to_folder

    t0 = time.perf_counter()
    if case == "simulate":
        cohort = simulate(n, seed=seed)
        rows, events = len(cohort.measurements), len(cohort.events)
        size_mb = 0.0
    else:
        with tempfile.TemporaryDirectory(prefix="bench_synth_") as tmp:
            report = synth_to_folder(Path(tmp) / "cohort", n=n, seed=seed, fmt=fmt)
            rows, events = report.n_measurements, report.n_events
            size_mb = sum(f.stat().st_size for f in report.out.iterdir()) / 1024**2
    seconds = time.perf_counter() - t0
    return {
        "case": case if case == "simulate" else f"folder ({fmt})",
        "patients": n,
        "measurement_rows": rows,
        "event_rows": events,
        "seconds": round(seconds, 1),
        "peak_rss_gb": round(_peak_rss_gb(), 2),
        "files_mb": round(size_mb, 1),
    }


def run_case(case: str, n: int, seed: int, fmt: str) -> dict:
    cmd = [sys.executable, __file__, "--worker", case, "--n", str(n), "--seed", str(seed)]
    out = subprocess.run([*cmd, "--format", fmt], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--format", default="parquet", choices=("csv", "parquet"))
    ap.add_argument("--million", action="store_true", help="also run n = 1,000,000 (minutes)")
    ap.add_argument("--worker", choices=("simulate", "folder"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.n, args.seed, args.format)))
        return
    cases = [("simulate", args.n), ("folder", args.n)]
    if args.million:
        cases += [("simulate", 1_000_000), ("folder", 1_000_000)]
    print(f"{'case':<18}{'patients':>11}{'rows':>13}{'events':>11}{'s':>8}{'GB':>7}{'MB':>8}")
    failed = False
    for case, n in cases:
        r = run_case(case, n, args.seed, args.format)
        ok = n > 100_000 or (r["seconds"] < TARGET_S and r["peak_rss_gb"] < TARGET_GB)
        failed |= not ok
        print(
            f"{r['case']:<18}{r['patients']:>11,}{r['measurement_rows']:>13,}"
            f"{r['event_rows']:>11,}{r['seconds']:>8}{r['peak_rss_gb']:>7}{r['files_mb']:>8}"
            + ("" if ok else f"  ABOVE TARGET ({TARGET_S:g} s, {TARGET_GB:g} GB)")
        )
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
