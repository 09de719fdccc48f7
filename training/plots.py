"""Validation plots (matplotlib): ROC, precision–recall, calibration, decision curve,
subgroup forest — the figures TRIPOD+AI (Collins GS et al. 2024, BMJ 385:e078378) asks for.

Figures are built with the object API (``matplotlib.figure.Figure``: Agg canvas, no pyplot
state), so importing this module changes no global backend. Each function draws from aggregate
inputs (predictions pooled over repeats, tables of metrics) and writes one PNG; nothing
patient-identifying is drawn. Figures are small (dpi 90) so that a quickstart with dozens of
runs stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.metrics import precision_recall_curve, roc_curve

from training.calibration import calibration_table

DPI = 90
SIZE = (4.6, 4.0)


def _figure(size: tuple[float, float] = SIZE, left: float = 0.15) -> tuple[Figure, Any]:
    """A figure outside pyplot (no global state, Agg canvas) with fixed margins.

    Fixed margins instead of ``tight_layout``: it was a third of the drawing time.
    """
    fig = Figure(figsize=size)
    fig.subplots_adjust(left=left, right=0.97, bottom=0.13, top=0.9)
    return fig, fig.add_subplot()


def _finish(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    return path


def _rows(predictions: np.ndarray) -> np.ndarray:
    p = np.asarray(predictions, dtype=float)
    return p[None, :] if p.ndim == 1 else p


def roc_plot(y: np.ndarray, predictions: np.ndarray, title: str, path: Path) -> Path:
    """One ROC curve per repeat (thin) with the chance diagonal."""
    fig, ax = _figure()
    for i, p in enumerate(_rows(predictions)):
        fpr, tpr, _ = roc_curve(y, p)
        ax.plot(fpr, tpr, color="C0", lw=1.2 if i == 0 else 0.6, alpha=1 if i == 0 else 0.5)
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=0.8)
    ax.set(xlabel="1 − specificity", ylabel="Sensitivity", title=title, xlim=(0, 1), ylim=(0, 1))
    return _finish(fig, path)


def pr_plot(y: np.ndarray, predictions: np.ndarray, title: str, path: Path) -> Path:
    """Precision–recall curve per repeat with the prevalence line."""
    fig, ax = _figure()
    for i, p in enumerate(_rows(predictions)):
        prec, rec, _ = precision_recall_curve(y, p)
        ax.step(rec, prec, where="post", color="C1", lw=1.2 if i == 0 else 0.6)
    ax.axhline(float(np.mean(y)), ls="--", color="grey", lw=0.8, label="prevalence")
    ax.set(xlabel="Recall (sensitivity)", ylabel="Precision (PPV)", title=title)
    ax.set(xlim=(0, 1), ylim=(0, 1.02))
    ax.legend(loc="upper right", fontsize=8)
    return _finish(fig, path)


def calibration_plot(
    y: np.ndarray, predictions: np.ndarray, title: str, path: Path, n_bins: int = 5
) -> Path:
    """Observed vs predicted risk in quantile bins with a Wilson 95% band (first repeat)."""
    p = _rows(predictions)[0]
    table = calibration_table(y, p, n_bins=n_bins)
    fig, ax = _figure()
    ax.fill_between(
        table["mean_predicted"],
        table["low"],
        table["high"],
        color="C2",
        alpha=0.2,
        label="95% CI",
    )
    ax.plot(table["mean_predicted"], table["observed"], "o-", color="C2", label="observed")
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=0.8, label="ideal")
    top = float(min(1.0, max(0.2, table["high"].max(), table["mean_predicted"].max()) * 1.1))
    ax.set(xlabel="Predicted risk", ylabel="Observed proportion", title=title)
    ax.set(xlim=(0, top), ylim=(0, top))
    ax.legend(loc="upper left", fontsize=8)
    return _finish(fig, path)


def decision_curve_plot(decision: dict[str, list], title: str, path: Path) -> Path:
    """Net benefit of the model vs treat-all and treat-none across threshold probabilities."""
    t = np.asarray(decision["threshold"])
    model = np.asarray(decision["model"])
    fig, ax = _figure()
    ax.plot(t, model, color="C3", label="model")
    ax.plot(t, decision["treat_all"], color="grey", lw=0.9, label="treat all")
    ax.plot(t, decision["treat_none"], color="black", lw=0.9, ls=":", label="treat none")
    lo = min(-0.05, float(np.nanmin(model)) - 0.02)
    hi = max(0.05, float(np.nanmax(np.r_[model, decision["treat_all"]])) + 0.02)
    ax.set(xlabel="Threshold probability", ylabel="Net benefit", title=title, ylim=(lo, hi))
    ax.legend(loc="upper right", fontsize=8)
    return _finish(fig, path)


def subgroup_forest_plot(table: pd.DataFrame, title: str, path: Path) -> Path:
    """AUROC with 95% CI per subgroup level; ``n (events)`` in the labels."""
    rows = table.reset_index(drop=True)
    fig, ax = _figure((5.6, max(2.0, 0.32 * len(rows) + 1.0)), left=0.45)
    ypos = np.arange(len(rows))[::-1]
    labels = [
        f"{r.subgroup}={r.level}  "
        + (
            "n<5 (suppressed)"
            if r.n_patients != r.n_patients
            else f"n={r.n_patients:.0f} ({r.n_events:.0f})"
        )
        for r in rows.itertuples()
    ]
    auc = rows["auroc"].to_numpy(dtype=float)
    lo = rows["auroc_ci_low"].to_numpy(dtype=float)
    hi = rows["auroc_ci_high"].to_numpy(dtype=float)
    ok = np.isfinite(auc)
    ax.errorbar(
        auc[ok],
        ypos[ok],
        xerr=[np.nan_to_num(auc[ok] - lo[ok]), np.nan_to_num(hi[ok] - auc[ok])],
        fmt="s",
        color="C0",
        ecolor="C0",
        capsize=2,
    )
    for yp in ypos[~ok]:
        ax.text(0.52, yp, "not estimable", va="center", fontsize=7, color="grey")
    ax.axvline(0.5, ls="--", color="grey", lw=0.8)
    ax.set_yticks(ypos, labels, fontsize=7)
    ax.set(xlim=(0.3, 1.0), xlabel="AUROC (95% CI, patient bootstrap)", title=title)
    return _finish(fig, path)
