"""Benchmark: training time of the selection-aware procedure at n = 118, 500 and 2,000.

For each size a synthetic cohort is simulated, its severe-CRS 48 h table built, and the pure
assessment step (``training.assessment.assess_landmark``: every candidate of
the ``quickstart`` preset (``training/presets``) with nested CV, the champion rule applied
inside every outer fold, the refits on the whole cohort, bootstrap CIs; no MLflow writes, no
null check) is timed.
Repeats follow the experiment defaults (5 below 500 patients, 2 from 500). Records wall and CPU
seconds (the machine is shared: CPU time is the figure that does not depend on neighbours).

Usage: ``python benchmarks/bench_train.py [--sizes 118 500 2000] [--out results_train.json]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def one(n: int, seed: int = 7) -> dict[str, object]:
    import tempfile

    from threadpoolctl import threadpool_limits

    from features.build import build_landmarks
    from features.catalog import catalog_for
    from features.io import load_cohort
    from features.synth import synth_to_folder
    from training.assessment import assess_landmark
    from training.experiment import load_experiment
    from training.feature_sets import feature_set_columns
    from training.presets import preset_path

    exp = load_experiment(preset_path("quickstart"))
    exp = exp.model_copy(
        update={"validation": exp.validation.model_copy(update={"repeats": None, "null_check": 0})}
    )
    with tempfile.TemporaryDirectory(prefix="crs-risk-bench-") as tmp:
        synth_to_folder(Path(tmp) / "cohort", n=n, seed=seed)
        cohort = load_cohort(Path(tmp) / "cohort")
    table = build_landmarks(cohort, "severe_crs", ("48h",))["48h"]
    catalog = catalog_for("severe_crs", "48h")
    sets = {fs: feature_set_columns(exp, fs, catalog) for fs in exp.feature_sets}
    wall, cpu = time.perf_counter(), time.process_time()
    with threadpool_limits(limits=1):
        la = assess_landmark(exp, table, catalog, exp.models_for("severe_crs"), sets)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    p = la.procedure
    return {
        "n_cohort": n,
        "n_eligible_48h": len(table.y),
        "events": int(table.y.sum()),
        "repeats": exp.validation.repeats_for(len(table.y)),
        "candidates": len(la.candidates),
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "champion_auroc": None if p is None else round(p.report.estimates["auroc"].value, 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[118, 500, 2000])
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results_train.json")
    args = ap.parse_args()
    rows = []
    for n in args.sizes:
        rows.append(one(n))
        print(json.dumps(rows[-1]), flush=True)
    result = {
        "what": "assess_landmark (selection-aware champion procedure), severe_crs @ 48h, "
        "quickstart.yaml models, default repeats",
        "runs": rows,
        "cpus": os.cpu_count(),
        "load_average_before": list(os.getloadavg()),
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
