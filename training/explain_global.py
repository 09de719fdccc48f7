"""A model's global SHAP picture over a cohort: importance per clinical variable and its files.

:func:`global_importance` ranks clinical variables by mean |SHAP| with the observed direction
(Spearman's ρ between a variable's value and its contribution) beside the catalog's expected
one and the share of patients with it missing. :func:`write_global_explanations` explains a
training table and writes ``shap/importance.csv`` and the figures into a folder — aggregates
and anonymous dots only, never identifiers; logging them to MLflow is ``training.sink``'s job.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from features.catalog import FeatureSpec
from training import explain_plots
from training.explain import ADDITIVITY_TOL, ModelExplainer, ShapResult
from training.explain_attribution import M_EASIX_PARTS

SHAP_DIR = "shap"
IMPORTANCE_CSV = f"{SHAP_DIR}/importance.csv"
IMPORTANCE_PNG = f"{SHAP_DIR}/importance.png"
BEESWARM_PNG = f"{SHAP_DIR}/beeswarm.png"
DEPENDENCE_PNG = f"{SHAP_DIR}/dependence.png"


def _direction(x: np.ndarray, phi: np.ndarray) -> tuple[int, float]:
    """Sign of Spearman's ρ between a variable's value and its contribution (0 if |ρ| < 0.1)."""
    ok = np.isfinite(x)
    if ok.sum() < 5 or np.ptp(x[ok]) == 0 or np.ptp(phi[ok]) == 0:
        return 0, float("nan")
    rho = float(spearmanr(x[ok], phi[ok]).statistic)
    if not math.isfinite(rho) or abs(rho) < 0.1:
        return 0, rho
    return (1 if rho > 0 else -1), rho


def global_importance(explainer: ModelExplainer, result: ShapResult) -> pd.DataFrame:
    """One row per clinical variable, by mean |SHAP|: label, shown feature, unit, direction
    (observed, and expected from the catalog), and the share of patients with it missing."""
    X = result.data.to_numpy(dtype=np.float64)
    per_input = np.zeros((X.shape[0], len(explainer.input_columns) + 1))
    np.add.at(per_input.T, explainer._col_input, result.values.T)
    mean_abs_input = np.abs(per_input).mean(axis=0)
    rows = []
    for v_idx, v in enumerate(result.variables):
        phi = result.grouped[:, v_idx]
        members = explainer._members[v]
        composite = v == "m_easix" and "m_easix_score" in explainer.columns
        if composite:
            parts = [explainer.input_columns.index(c) for c in M_EASIX_PARTS]
            with np.errstate(divide="ignore", invalid="ignore"):
                x = X[:, parts[0]] * X[:, parts[1]] / 10.0 / X[:, parts[2]]
            feature, unit, kind = "m_easix_score", "score", "continuous"
            expected = 1
        else:
            head = int(members[int(np.argmax(mean_abs_input[members]))])
            feature = explainer.input_columns[head]
            spec = explainer.specs.get(feature)
            x = X[:, head]
            unit = spec.unit if spec is not None else ""
            kind = spec.kind if spec is not None else "continuous"
            dirs = {
                int(explainer.specs[explainer.input_columns[i]].direction)
                for i in members
                if explainer.input_columns[i] in explainer.specs
                and not explainer.input_columns[i].endswith("_missing")
            } - {0}
            expected = dirs.pop() if len(dirs) == 1 else 0
        if explainer._one_hot[v]:
            direction, rho = 0, float("nan")  # levels: no single "higher value" direction
        else:
            direction, rho = _direction(x, phi)
        rows.append(
            {
                "variable": v,
                "label": explainer.variable_labels[v],
                "feature": feature,
                "unit": unit,
                "kind": kind,
                "mean_abs_log_odds": float(np.abs(phi).mean()) if len(phi) else 0.0,
                "mean_log_odds": float(phi.mean()) if len(phi) else 0.0,
                "direction": direction,
                "spearman_rho": rho,
                "expected_direction": expected,
                "agrees": (direction == expected) if direction and expected else None,
                "missing_pct": float(100.0 * np.isnan(x).mean()) if len(x) else 0.0,
                "n_patients": len(phi),
            }
        )
    table = pd.DataFrame(rows).sort_values(
        ["mean_abs_log_odds", "variable"], ascending=[False, True], kind="stable"
    )
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    return table.reset_index(drop=True)


def direction_text(direction: int, kind: str) -> str:
    """'higher → higher risk' / 'present → lower risk' / 'no consistent direction'."""
    if direction == 0:
        return "no consistent direction"
    what = "present" if kind == "binary" else "higher"
    return f"{what} → {'higher' if direction > 0 else 'lower'} risk"


def write_global_explanations(
    model: Any,
    X: pd.DataFrame,
    out: Path,
    catalog: Sequence[FeatureSpec] | Mapping[str, FeatureSpec] | None = None,
    *,
    title: str = "",
    n_dependence: int = 3,
    max_rows: int = 5000,
    seed: int = 0,
    per_patient: bool = True,
) -> pd.DataFrame:
    """Explain ``X`` and write the global SHAP files under ``out``; return the importance table.

    ``per_patient=False`` (a real cohort) writes only aggregate views: the importance table and
    bar chart, no beeswarm or dependence plot (one point per patient). SHAP values of the final
    model on its own training patients are *apparent* (in-sample) — the figures say so.

    ``X`` is the training feature table (no identifiers; ``features.table.FeatureTable.X``).
    Writes ``shap/importance.csv`` (per clinical variable: mean |SHAP|, mean SHAP, observed and
    expected direction, missingness — aggregates only), ``shap/importance.png``,
    ``shap/beeswarm.png`` and ``shap/dependence.png`` (one panel for each of the top
    ``n_dependence`` variables). Above ``max_rows`` patients a random subsample is explained
    (plots stay legible, large synthetic cohorts stay fast). Raises when SHAP values do not add
    up to the model's log-odds within ``ADDITIVITY_TOL``.
    """
    data = X.astype("float64")
    if len(data) > max_rows:
        data = data.sample(n=max_rows, random_state=seed)
    explainer = ModelExplainer(model, catalog)
    result = explainer.explain(data)
    err = result.additivity_error()
    if not err <= ADDITIVITY_TOL:
        raise RuntimeError(
            f"SHAP additivity failed for a {explainer.family} model: |base + Σφ − log-odds| = "
            f"{err:.2e} > {ADDITIVITY_TOL:g}"
        )
    table = global_importance(explainer, result)
    (out / SHAP_DIR).mkdir(parents=True, exist_ok=True)
    table.to_csv(out / IMPORTANCE_CSV, index=False, float_format="%.6g")
    title = f"{title} (apparent: final model on its training data)" if title else title
    explain_plots.importance_plot(table, out / IMPORTANCE_PNG, title)
    if per_patient:
        explain_plots.beeswarm_plot(explainer, result, table, out / BEESWARM_PNG, title)
        top = table.head(n_dependence)
        panels = [(r.variable, r.feature) for r in top.itertuples() if r.mean_abs_log_odds > 0]
        if panels:
            explain_plots.dependence_plot(explainer, result, panels, out / DEPENDENCE_PNG, title)
    return table
