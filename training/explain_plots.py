"""SHAP figures with clinical labels (matplotlib, Agg backend): global importance, beeswarm,
dependence of a variable's contribution on its value, and one patient's waterfall.

All on the log-odds scale of the uncalibrated model (see ``training.explain``). The global
figures draw aggregate bars or anonymous dots — no identifier is ever drawn. They are logged in
every training run, so they are drawn cheaply: small (dpi 90), fixed margins instead of
``tight_layout``, one figure for all dependence panels, and a beeswarm drawn here (the layout of
``shap.plots.beeswarm`` — values binned along x, dots stacked outwards within a bin, colour =
the value's percentile — at a fraction of its cost).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from training.explain_attribution import format_log_odds

if TYPE_CHECKING:  # types only: the explainer imports nothing from here
    from training.explain import ModelExplainer, ShapResult
    from training.explain_attribution import PatientExplanation

DPI = 90
UP, DOWN, FLAT = "#c0392b", "#2471a3", "#7f8c8d"  # raises / lowers risk / neither
LABEL_WIDTH = 38  # characters; the left margin is sized for it


def _finish(fig: plt.Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def _short(text: str, width: int = LABEL_WIDTH) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _rows_figure(n_rows: int, width: float = 6.4) -> tuple[plt.Figure, plt.Axes]:
    """A figure with one horizontal row per variable and a left margin for ~38-char labels."""
    height = max(2.4, 0.3 * n_rows + 1.3)
    fig, ax = plt.subplots(figsize=(width, height))
    fig.subplots_adjust(left=0.36, right=0.95, top=1 - 0.45 / height, bottom=0.6 / height)
    return fig, ax


def importance_plot(table: pd.DataFrame, path: Path, title: str = "", top: int = 15) -> Path:
    """Mean |SHAP| per clinical variable (bars coloured by the observed direction)."""
    rows = table.head(top).iloc[::-1]
    fig, ax = _rows_figure(len(rows))
    colours = [UP if d > 0 else DOWN if d < 0 else FLAT for d in rows["direction"].to_numpy()]
    ax.barh(np.arange(len(rows)), rows["mean_abs_log_odds"], color=colours)
    ax.set_yticks(np.arange(len(rows)), [_short(str(s)) for s in rows["label"]], fontsize=8)
    ax.set_xlabel("Mean |SHAP| (log-odds)", fontsize=8)
    ax.set_title(title or "Importance by clinical variable", fontsize=9)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in (UP, DOWN, FLAT)]
    ax.legend(
        handles,
        ["higher value → higher risk", "higher value → lower risk", "no single direction"],
        fontsize=7,
        loc="lower right",
    )
    return _finish(fig, path)


def _swarm_offsets(values: np.ndarray, bins: int = 60, width: float = 0.4) -> np.ndarray:
    """Vertical offsets stacking dots that share an x bin outwards (±1, ±2, …)."""
    lo, hi = float(np.min(values)), float(np.max(values))
    span = hi - lo if hi > lo else 1.0
    b = np.minimum(((values - lo) / span * bins).astype(int), bins - 1)
    order = np.argsort(b, kind="stable")
    rank = np.empty(len(values), dtype=int)
    counts = np.bincount(b, minlength=bins)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank[order] = np.arange(len(values)) - starts[b[order]]
    layer = (rank + 1) // 2 * np.where(rank % 2 == 0, 1, -1)
    return layer * (width / max(1.0, counts.max() / 2))


def beeswarm_plot(
    explainer: ModelExplainer,
    result: ShapResult,
    table: pd.DataFrame,
    path: Path,
    title: str = "",
    top: int = 12,
) -> Path:
    """Per-variable SHAP values, one dot per patient, coloured by the variable's shown value
    (its percentile among patients; grey = missing)."""
    chosen = table.head(top)
    fig, ax = _rows_figure(len(chosen))
    cmap = plt.get_cmap("coolwarm")
    X = result.data
    n = len(chosen)
    for i, row in enumerate(chosen.itertuples()):
        y = n - 1 - i
        phi = result.grouped[:, result.variables.index(row.variable)]
        x = X[row.feature].to_numpy(dtype=float) if row.feature in X.columns else None
        colour = np.full((len(phi), 4), matplotlib.colors.to_rgba("#b3b6b7"))
        if x is not None and np.isfinite(x).any():
            ok = np.isfinite(x)
            pct = pd.Series(x[ok]).rank(pct=True).to_numpy()
            colour[ok] = cmap(pct)
        ax.scatter(phi, y + _swarm_offsets(phi), s=9, c=colour, linewidths=0)
    ax.axvline(0, color="grey", lw=0.7)
    ax.set_yticks(range(n), [_short(str(s)) for s in chosen["label"]][::-1], fontsize=8)
    ax.set_ylim(-0.7, n - 0.3)
    ax.set_xlabel("SHAP value (log-odds); colour: low → high value, grey = missing", fontsize=8)
    ax.set_title(title or "Contributions by clinical variable", fontsize=9)
    return _finish(fig, path)


def _dependence_x(explainer: ModelExplainer, result: ShapResult, feature: str) -> tuple:
    """(values in original units, axis label, log scale?) of a variable's shown feature."""
    spec = explainer.specs.get(feature)
    if feature in result.data.columns:
        x = result.data[feature].to_numpy(dtype=float)
        label = (spec.label + (f" ({spec.unit})" if spec.unit else "")) if spec else feature
        positive = np.isfinite(x) & (x > 0)
        log = bool(spec is not None and spec.skewed and positive.sum() == np.isfinite(x).sum())
        return x, label, log and positive.sum() > 1
    d = result.data  # the m-EASIX composite of LDH, CRP and platelets
    with np.errstate(divide="ignore", invalid="ignore"):
        x = (
            d["ldh_last"].to_numpy(float)
            * d["crp_last"].to_numpy(float)
            / 10.0
            / d["platelets_last"].to_numpy(float)
        )
    x = np.where(np.isfinite(x), x, np.nan)
    return x, "m-EASIX (score)", bool(np.nanmin(x) > 0) if np.isfinite(x).any() else False


def dependence_plot(
    explainer: ModelExplainer,
    result: ShapResult,
    variables: list[tuple[str, str]],
    path: Path,
    title: str = "",
) -> Path:
    """One panel per (variable, shown feature): the variable's summed contribution against its
    value in original units; patients with the value missing at x = "missing" on the left."""
    k = max(1, len(variables))
    fig, axes = plt.subplots(1, k, figsize=(3.1 * k, 3.0), sharey=True, squeeze=False)
    fig.subplots_adjust(left=0.08 if k > 1 else 0.2, right=0.98, top=0.8, bottom=0.2, wspace=0.1)
    for ax, (variable, feature) in zip(axes[0], variables, strict=False):
        phi = result.grouped[:, result.variables.index(variable)]
        x, label, log = _dependence_x(explainer, result, feature)
        ok = np.isfinite(x)
        ax.scatter(x[ok], phi[ok], s=8, alpha=0.7, color="C0", linewidths=0)
        if log:
            ax.set_xscale("log")
        if (~ok).any() and ok.any():
            lo = np.nanmin(x[ok])
            ax.scatter(np.full(int((~ok).sum()), lo), phi[~ok], s=8, color="C1", marker="x")
        ax.axhline(0, color="grey", lw=0.7)
        ax.set_xlabel(_short(label, 34), fontsize=7)
        ax.set_title(_short(explainer.variable_labels[variable], 30), fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0, 0].set_ylabel("SHAP value (log-odds)", fontsize=8)
    fig.suptitle((title + " — " if title else "") + "dependence (× = value missing)", fontsize=8)
    return _finish(fig, path)


def waterfall_plot(explanation: PatientExplanation, path: Path, title: str = "") -> Path:
    """One patient: from the base value through each variable's contribution to the log-odds;
    the calibrated probability in the title."""
    items = [(c.text.split(" → ")[0], c.log_odds) for c in explanation.contributions]
    if explanation.n_other:
        items.append((f"{explanation.n_other} other variables", explanation.other_log_odds))
    items = items[::-1]  # largest at the top
    height = max(2.6, 0.42 * len(items) + 1.6)
    fig, ax = plt.subplots(figsize=(7.6, height))
    fig.subplots_adjust(left=0.45, right=0.95, top=1 - 0.75 / height, bottom=0.7 / height)
    pos = explanation.base_value  # bottom bar starts at the base value, the top one ends at f(x)
    for i, (_label, val) in enumerate(items):
        ax.barh(i, val, left=pos, color=UP if val > 0 else DOWN, height=0.6)
        ax.text(max(pos, pos + val), i, f" {format_log_odds(val)}", va="center", fontsize=7)
        pos += val
    ax.set_yticks(range(len(items)), [_short(lab, 56) for lab, _ in items], fontsize=7.5)
    ax.axvline(explanation.base_value, color="grey", lw=0.8, ls="--")
    ax.axvline(explanation.log_odds, color="black", lw=0.8)
    ax.set_xlabel(
        f"log-odds (base {explanation.base_value:.2f} → patient {explanation.log_odds:.2f})",
        fontsize=8,
    )
    head = f"Risk {100 * explanation.probability:.0f}%"
    if explanation.calibrated:
        head += f" (calibrated; uncalibrated {100 * explanation.model_probability:.0f}%)"
    ax.set_title((title + "\n" if title else "") + head, fontsize=9)
    return _finish(fig, path)
