"""Performance by subgroup (age band, product, centre, marrow burden) — TRIPOD+AI item 23a.

For each level of each subgroup column of the feature table: participants, events, AUROC with a
stratified-bootstrap CI (only when the level has at least one event and one non-event),
observed event rate and mean predicted risk (calibration-in-the-large within the subgroup).
Levels are category labels (centre codes, age bands), never patient identifiers. A cell with
fewer than ``MIN_CELL`` patients is suppressed (counts, AUROC and risks blank, ``suppressed``
true): a small cell of a real cohort can single out a patient (statistical disclosure control,
e.g. the UK ONS "rule of five").
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from training.metrics import auroc, estimate

MIN_CELL = 5


COLUMNS = (
    "subgroup",
    "level",
    "n_patients",
    "n_events",
    "auroc",
    "auroc_ci_low",
    "auroc_ci_high",
    "observed_risk",
    "mean_predicted_risk",
    "suppressed",
)


def subgroup_table(
    y: np.ndarray,
    predictions: np.ndarray,
    groups: pd.DataFrame,
    subgroups: Sequence[str],
    *,
    n_boot: int,
    seed: int,
    level: float = 0.95,
) -> pd.DataFrame:
    """One row per (subgroup, level) with n, events, AUROC [CI], observed and predicted risk."""
    y_arr = np.asarray(y, dtype=float)
    preds = np.asarray(predictions, dtype=float)
    preds = preds[None, :] if preds.ndim == 1 else preds
    rows = []
    for sg in subgroups:
        if sg not in groups.columns:
            continue
        values = groups[sg].astype(str).to_numpy()
        for lvl in sorted(set(values)):
            mask = values == lvl
            yy = y_arr[mask]
            pp = preds[:, mask]
            if yy.size < MIN_CELL:
                rows.append(
                    {"subgroup": sg, "level": lvl, "suppressed": True}
                    | {k: float("nan") for k in COLUMNS[2:-1]}
                )
                continue
            events = int(yy.sum())
            estimable = 0 < events < yy.size
            if estimable:
                e = estimate(auroc, yy, pp, n_boot=n_boot, seed=seed, level=level)
                auc, lo, hi = e.value, e.low, e.high
            else:
                auc = lo = hi = float("nan")
            rows.append(
                {
                    "subgroup": sg,
                    "level": lvl,
                    "n_patients": int(yy.size),
                    "n_events": events,
                    "auroc": auc,
                    "auroc_ci_low": lo,
                    "auroc_ci_high": hi,
                    "observed_risk": float(yy.mean()) if yy.size else float("nan"),
                    "mean_predicted_risk": float(np.nanmean(pp)) if yy.size else float("nan"),
                    "suppressed": False,
                }
            )
    return pd.DataFrame(rows, columns=list(COLUMNS))
