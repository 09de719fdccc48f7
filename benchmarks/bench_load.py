"""Load benchmark: ``features.io.load_cohort`` on 100,000 patients / ~10 million measurements.

Builds a synthetic cohort with ``features.synth.simulate`` (the real generator; it yields ~170
measurement rows per patient, so a random subset of rows is kept to reach the target row count,
which leaves a valid cohort), writes it as Parquet through ``features.io.write_cohort`` into a
temporary folder, then loads it in a fresh process so that the wall time and peak RSS
(``resource.getrusage``) are those of ``load_cohort`` alone. Target: < 60 s and < 6 GB on 2 cores.

    .venv/bin/python benchmarks/bench_load.py [--patients 100000] [--rows 10000000]
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

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def _peak_rss_gb(who: int = resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024**2  # Linux reports KiB


def build(folder: Path, patients: int, rows: int, seed: int) -> dict[str, float]:
    """Simulate, subsample measurements to ``rows`` and write a Parquet cohort folder."""
    from features.io import write_cohort
    from features.synth import simulate

    t0 = time.perf_counter()
    synthetic = simulate(patients, seed=seed)
    t_sim = time.perf_counter() - t0
    m = synthetic.measurements
    if len(m) > rows:
        keep = np.sort(np.random.default_rng(seed).choice(len(m), size=rows, replace=False))
        m = m.iloc[keep].reset_index(drop=True)
    t1 = time.perf_counter()
    write_cohort(folder, synthetic.patients, m, synthetic.events, fmt="parquet")
    t_write = time.perf_counter() - t1
    return {
        "patients": len(synthetic.patients),
        "measurement_rows": len(m),
        "event_rows": len(synthetic.events),
        "simulate_s": t_sim,
        "write_s": t_write,
        "parquet_mb": sum(f.stat().st_size for f in folder.iterdir()) / 1024**2,
    }


def load(folder: Path) -> dict[str, float]:
    """Time ``load_cohort`` in this process; report wall time and peak RSS."""
    t0 = time.perf_counter()
    from features.io import load_cohort

    t_import = time.perf_counter() - t0
    t1 = time.perf_counter()
    cohort = load_cohort(folder)
    t_load = time.perf_counter() - t1
    return {
        "import_s": t_import,
        "load_s": t_load,
        "peak_rss_gb": _peak_rss_gb(),
        "canonical_measurements": len(cohort.measurements),
        "digest": cohort.digest[:12],
    }


def _child(*args: str) -> dict[str, float]:
    """Run this script in a fresh process (started from the small parent, so that its peak RSS
    is its own) and return the JSON figures it prints."""
    done = subprocess.run(
        [sys.executable, __file__, *args], check=True, capture_output=True, text=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--build-only", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--load-only", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.build_only is not None:
        built = build(args.build_only, args.patients, args.rows, args.seed)
        print(json.dumps({**built, "peak_rss_gb": _peak_rss_gb()}))
        return
    if args.load_only is not None:
        print(json.dumps(load(args.load_only)))
        return
    with tempfile.TemporaryDirectory(prefix="crs-bench-") as tmp:
        folder = Path(tmp) / "cohort"
        sizes = (
            "--patients",
            str(args.patients),
            "--rows",
            str(args.rows),
            "--seed",
            str(args.seed),
        )
        built = _child("--build-only", str(folder), *sizes)
        print(
            f"built {built['patients']:,} patients, {built['measurement_rows']:,} measurement "
            f"rows, {built['event_rows']:,} events: simulate {built['simulate_s']:.1f} s, "
            f"validate+write {built['write_s']:.1f} s, {built['parquet_mb']:.0f} MB Parquet "
            f"(builder peak RSS {built['peak_rss_gb']:.2f} GB)"
        )
        result = _child("--load-only", str(folder))
    ok = result["load_s"] < 60 and result["peak_rss_gb"] < 6
    print(
        f"load_cohort: {result['load_s']:.1f} s wall (+{result['import_s']:.1f} s imports), "
        f"peak RSS {result['peak_rss_gb']:.2f} GB, {result['canonical_measurements']:,} "
        f"canonical rows, digest {result['digest']}… — target < 60 s and < 6 GB: "
        f"{'met' if ok else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
