"""Leaderboard of an MLflow experiment: metric with CI per model and landmark, gap to the oracle,
and only the parameters that differ between the runs shown (the rest is noise for a reader); a
parameter only some models have (``fixed.n_estimators``) counts as differing only when the runs
that have it disagree.

Read from the tracking store (``mlflow.search_runs``), so it works for any past training, on
the embedded SQLite store or a shared server; written as CSV and HTML beside the printout.
By default only runs of the latest run's experiment file and cohort digest are shown (numbers
from other cohorts or other experiment files are not comparable), with the validation method
and each run's role: ``candidate`` (one model's own estimate) or ``champion procedure`` (the
outer-loop estimate of choosing among the candidates — what a registered champion reports).
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException

from features.errors import CrsRiskError
from training.registry import registered_name
from training.tracking import connect, resolve_tracking_uri

KEY_COLUMNS = ("task", "landmark", "model", "feature_set")
# Parameters that are already columns, or are identical by construction within one experiment.
_NOT_COMPARED = {*KEY_COLUMNS, "cohort_digest", "validation_method"}


def _landmark_order(value: str) -> float:
    text = str(value)
    if text.endswith("h"):
        try:
            return float(text[:-1])
        except ValueError:
            return 1e9
    return 1e9


def _fmt_ci(value: float, low: float, high: float) -> str:
    if not math.isfinite(value):
        return "—"
    if math.isfinite(low) and math.isfinite(high):
        return f"{value:.3f} [{low:.3f}–{high:.3f}]"
    return f"{value:.3f}"


def _num(row: pd.Series, col: str) -> float:
    value = row.get(col)
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _champion_runs(client: Any, names: set[str]) -> dict[str, str]:
    """run_id → registered name for each ``champion`` alias of the given registered models."""

    out: dict[str, str] = {}
    for name in names:
        try:
            mv = client.get_model_version_by_alias(name, "champion")
        except MlflowException:
            continue
        if mv.run_id:
            out[mv.run_id] = f"{name} v{mv.version}"
    return out


def leaderboard(
    experiment: str,
    *,
    tracking_uri: str | None = None,
    metric: str = "auroc",
    include_all: bool = False,
    experiment_file: str | None = None,
    cohort_digest: str | None = None,
) -> pd.DataFrame:
    """Training runs of ``experiment`` (latest per task/landmark/role/model/feature set, of the
    latest experiment file and cohort digest unless given)."""

    uri = resolve_tracking_uri(tracking_uri)
    client = connect(uri)
    if client.get_experiment_by_name(experiment) is None:
        known = [e.name for e in client.search_experiments() if e.name != "Default"]
        raise CrsRiskError(
            f"no experiment {experiment!r} in {uri} (experiments: {', '.join(known) or 'none'})"
        )
    runs = mlflow.search_runs(
        experiment_names=[experiment],
        filter_string="tags.run_type = 'training' and attributes.status = 'FINISHED'",
        output_format="pandas",
        order_by=["attributes.start_time DESC"],
    )
    if runs.empty:
        raise CrsRiskError(f"experiment {experiment!r} has no finished training runs")
    for key in (*KEY_COLUMNS, "role", "experiment_file", "cohort_digest", "validation_method"):
        runs[key] = runs.get(f"tags.{key}", pd.Series([""] * len(runs))).fillna("")
    wanted_file = (
        experiment_file if experiment_file is not None else runs["experiment_file"].iloc[0]
    )
    wanted_digest = cohort_digest if cohort_digest is not None else runs["cohort_digest"].iloc[0]
    runs = runs[(runs["experiment_file"] == wanted_file) & (runs["cohort_digest"] == wanted_digest)]
    if runs.empty:
        raise CrsRiskError(
            f"no runs of experiment file {wanted_file!r} on cohort {wanted_digest[:12]!r} "
            f"in {experiment!r}"
        )
    if not include_all:
        runs = runs.drop_duplicates(subset=[*KEY_COLUMNS, "role"], keep="first")
    if f"metrics.{metric}" not in runs.columns:
        raise CrsRiskError(f"metric {metric!r} was not logged in {experiment!r}")
    names = {registered_name(t, lm) for t, lm in zip(runs["task"], runs["landmark"], strict=True)}
    champions = _champion_runs(client, names)

    rows = []
    for _, r in runs.iterrows():
        value = _num(r, f"metrics.{metric}")
        oracle = _num(r, "metrics.oracle_auroc")
        rows.append(
            {
                "task": r["task"],
                "landmark": r["landmark"],
                "role": "champion procedure" if r["role"] == "champion_procedure" else "candidate",
                "validation": r["validation_method"],
                "model": r["model"] if r["role"] != "champion_procedure" else f"→ {r['model']}",
                "feature_set": r["feature_set"],
                "n": int(_num(r, "metrics.n_patients"))
                if math.isfinite(_num(r, "metrics.n_patients"))
                else None,
                "events": int(_num(r, "metrics.n_events"))
                if math.isfinite(_num(r, "metrics.n_events"))
                else None,
                metric: value,
                f"{metric}_ci_low": _num(r, f"metrics.{metric}_ci_low"),
                f"{metric}_ci_high": _num(r, f"metrics.{metric}_ci_high"),
                "calibration_slope": _num(r, "metrics.calibration_slope"),
                "brier": _num(r, "metrics.brier"),
                "oracle_auroc": oracle,
                "champion": champions.get(r["run_id"], ""),
                "run_id": r["run_id"],
            }
        )
    board = pd.DataFrame(rows)
    params = [c for c in runs.columns if c.startswith("params.")]
    differing = [
        c
        for c in params
        if c.removeprefix("params.") not in _NOT_COMPARED
        and runs[c].dropna().astype(str).nunique() > 1
    ]
    for c in differing:
        board[c.removeprefix("params.")] = runs[c].to_numpy()
    board["_lm"] = board["landmark"].map(_landmark_order)
    board["_role"] = board["role"] != "champion procedure"
    board = board.sort_values(
        ["task", "_lm", "_role", metric], ascending=[True, True, True, False]
    ).drop(columns="_role")
    return board.drop(columns="_lm").reset_index(drop=True)


def format_leaderboard(board: pd.DataFrame, metric: str = "auroc") -> str:
    """Readable text table: metric [CI], slope, Brier, gap to the oracle, champion marker."""
    shown = pd.DataFrame(
        {
            "landmark": board["landmark"],
            "role": board.get("role", "candidate"),
            "model": board["model"]
            + board["feature_set"].map(lambda f: "" if f in ("all", "published") else f"/{f}"),
            "n (events)": [
                f"{n} ({e})" for n, e in zip(board.get("n"), board.get("events"), strict=True)
            ],
            f"{metric} [95% CI]": [
                _fmt_ci(v, lo, hi)
                for v, lo, hi in zip(
                    board[metric],
                    board[f"{metric}_ci_low"],
                    board[f"{metric}_ci_high"],
                    strict=True,
                )
            ],
            "slope": board["calibration_slope"].map(
                lambda v: f"{v:.2f}" if math.isfinite(v) else "—"
            ),
            "brier": board["brier"].map(lambda v: f"{v:.3f}" if math.isfinite(v) else "—"),
        }
    )
    if "oracle_auroc" in board and board["oracle_auroc"].notna().any() and metric == "auroc":
        shown["oracle gap"] = [
            f"{o - v:+.3f}" if math.isfinite(o) and math.isfinite(v) else "—"
            for o, v in zip(board["oracle_auroc"], board[metric], strict=True)
        ]
    champ = board["champion"]
    shown["champion"] = champ.map(
        lambda c: "★" if (c is True or (isinstance(c, str) and c)) else ""
    )
    extra = [
        c
        for c in board.columns
        if c not in shown.columns
        and c
        not in {
            "task",
            "landmark",
            "role",
            "model",
            "feature_set",
            "n",
            "events",
            metric,
            f"{metric}_ci_low",
            f"{metric}_ci_high",
            "calibration_slope",
            "brier",
            "oracle_auroc",
            "champion",
            "run_id",
        }
    ]
    for c in extra:
        shown[c] = board[c].map(lambda v: "" if pd.isna(v) else str(v))
    blocks = []
    tasks = board["task"] if "task" in board else pd.Series([""] * len(board))
    for task in dict.fromkeys(tasks):
        part = shown[tasks.to_numpy() == task]
        blocks.append(f"{task}\n" + part.to_string(index=False))
    return "\n".join(blocks)


def write_leaderboard(board: pd.DataFrame, out_dir: Path, experiment: str) -> tuple[Path, Path]:
    """CSV and HTML files of the leaderboard (``leaderboard-<experiment>.csv/.html``)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = out_dir / f"leaderboard-{experiment}.csv"
    html_path = out_dir / f"leaderboard-{experiment}.html"
    board.to_csv(csv_path, index=False)
    table = board.drop(columns=["run_id"], errors="ignore").to_html(
        index=False, float_format=lambda v: f"{v:.3f}", na_rep="—", border=0
    )
    html_path.write_text(
        "<!doctype html><meta charset='utf-8'>"
        f"<title>crs-risk leaderboard — {html.escape(experiment)}</title>"
        "<style>body{font-family:sans-serif}td,th{padding:2px 8px;text-align:right}</style>"
        f"<h1>{html.escape(experiment)}</h1>{table}",
        encoding="utf-8",
    )
    return csv_path, html_path
