"""Per-patient interval: what it covers on fresh data, and what it costs (issue 14 §5).

The interval (``training.interval``: bootstrap logistic recalibration of the training run's
out-of-fold predictions) claims to cover the outcome rate among patients given the same
predicted risk. On a fresh synthetic cohort from the same simulator (another seed) each
registered severe-CRS model scores every eligible patient; patients are grouped in deciles of
predicted risk and the decile's observed rate is compared with the interval at the decile's
mean prediction (coverage of what it claims). Beside it, the share of patients whose
simulator-true probability (``truth.csv``, 0 h only: the truth is not conditional on a later
landmark) lies in their interval — which the interval does not claim, reported so nobody reads
it as a per-patient truth interval. Cost: one ``IntervalTable.at`` per request and per
10,000 patients.

Usage: ``python benchmarks/bench_interval.py --store DIR [--n 3000]`` (a quickstart store).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--store", type=Path, required=True)
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=777)
    args = ap.parse_args()
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    from features.build import build_features
    from features.io import load_cohort, write_cohort
    from features.synth import simulate
    from serving.explaining import probabilities
    from serving.loading import load_snapshot

    snap = load_snapshot(f"sqlite:///{args.store / 'mlflow.db'}")
    sim = simulate(args.n, seed=args.seed)
    folder = Path(tempfile.mkdtemp()) / "cohort"
    write_cohort(folder, sim.patients, sim.measurements, sim.events)
    cohort = load_cohort(folder)
    truth = sim.truth.set_index("patient_id")["p_severe_crs"]
    out: dict[str, object] = {"n_simulated": args.n, "seed": args.seed, "models": {}}
    for (task, lm), model in sorted(snap.models.items()):
        if task != "severe_crs" or model.interval is None:
            continue
        table = build_features(cohort, task, lm)
        X = table.X[list(model.columns)].to_numpy(dtype=float)
        y = table.y.to_numpy(dtype=float)
        p = probabilities(model.model, model.explainer, X, model.columns)
        lo, hi = model.interval.at(p)
        edges = np.quantile(p, np.linspace(0, 1, 11))
        decile = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, 9)
        covered = []
        for d in range(10):
            sel = decile == d
            if sel.sum() < 20:
                continue
            l_d, h_d = model.interval.at(float(p[sel].mean()))
            covered.append(bool(l_d <= y[sel].mean() <= h_d))
        row: dict[str, object] = {
            "n_scored": len(p),
            "events": int(y.sum()),
            "deciles_covered": f"{sum(covered)}/{len(covered)}",
            "decile_coverage": float(np.mean(covered)) if covered else None,
            "mean_width_points": float(100 * np.mean(hi - lo)),
            "interval_from_n": model.interval.n,
        }
        if lm == "0h":
            t = truth.reindex(table.ids.astype(str).to_numpy()).to_numpy(dtype=float)
            ok = np.isfinite(t)
            row["patients_true_risk_inside"] = float(((lo <= t) & (t <= hi))[ok].mean())
        out["models"][model.name] = row  # type: ignore[index]
    table = next(m.interval for m in snap.models.values() if m.interval is not None)
    many = np.random.default_rng(0).random(10_000)
    t0 = time.perf_counter()
    for _ in range(1000):
        table.at(0.2)
    t1 = time.perf_counter()
    table.at(many)
    t2 = time.perf_counter()
    out["cost"] = {"one_patient_us": (t1 - t0) / 1000 * 1e6, "10000_patients_ms": (t2 - t1) * 1e3}
    out["load_average"] = os.getloadavg()
    text = json.dumps(out, indent=1)
    (HERE / "results_interval.json").write_text(text + "\n", encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
