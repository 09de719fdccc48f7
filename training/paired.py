"""Paired ΔAUROC of the champion procedure against every candidate, on the same patients.

Computed at training time (``training.train``) from the out-of-fold predictions keyed as the
sink logs them (``predictions/folds.csv``: a per-call random key replaces the row position) and
logged with the champion-procedure run as ``paired_auroc.json``; the model card reads it
(``training.card_gather``), so nothing is computed while a card is rendered. Paired stratified
bootstrap of the difference (``training.metrics.paired_difference``; 200 resamples, seed 7).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from training.assessment import LandmarkAssessment, ProcedureAssessment
from training.metrics import auroc, paired_difference

PAIRED_FILE = "paired_auroc.json"
N_BOOT, SEED = 200, 7


def keyed_folds(folds: pd.DataFrame, keys: np.ndarray) -> pd.DataFrame:
    """Out-of-fold predictions with the row position replaced by the call's random key."""
    out = folds.assign(key=keys[folds["row"].to_numpy()]).drop(columns="row")
    return out[["repeat", "fold", "key", "y", "p"]].sort_values(["repeat", "key"])


def procedure_folds(p: ProcedureAssessment) -> pd.DataFrame:
    """repeat, fold, row, y, p of the procedure's out-of-fold predictions."""
    t = p.template
    preds = p.predictions.predictions
    return t.assign(p=preds[t["repeat"].to_numpy(), t["row"].to_numpy()])


def fold_matrix(folds: pd.DataFrame) -> tuple[np.ndarray, np.ndarray] | None:
    """(y (n,), predictions (repeats, n)) of keyed fold predictions, ordered by key (runs of
    one call share the keys, so their matrices pair column by column)."""
    index = "key" if "key" in folds.columns else "row"
    if not {"repeat", index, "y", "p"} <= set(folds.columns) or folds.empty:
        return None
    preds = folds.pivot_table(index="repeat", columns=index, values="p", aggfunc="mean")
    y = folds.groupby(index)["y"].first().reindex(preds.columns).to_numpy(dtype=float)
    return y, preds.to_numpy(dtype=float)


def paired_auroc(la: LandmarkAssessment, keys: np.ndarray) -> dict[str, Any]:
    """ΔAUROC (procedure − candidate) [95% CI] per candidate label, for ``paired_auroc.json``."""
    deltas: dict[str, dict[str, float]] = {}
    p = la.procedure
    own = fold_matrix(keyed_folds(procedure_folds(p), keys)) if p is not None else None
    if own is not None:
        for c in la.candidates:
            theirs = fold_matrix(keyed_folds(c.validation.folds, keys))
            if theirs is None or not np.array_equal(theirs[0], own[0]):
                continue
            d = paired_difference(auroc, own[0], own[1], theirs[1], n_boot=N_BOOT, seed=SEED)
            deltas[c.label] = {"value": d.value, "low": d.low, "high": d.high}
    return {
        "method": "paired stratified bootstrap of AUROC(procedure) − AUROC(candidate) over the "
        "same patients' out-of-fold predictions",
        "n_boot": N_BOOT,
        "seed": SEED,
        "delta_auroc": deltas,
    }
