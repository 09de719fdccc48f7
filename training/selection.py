"""Choosing the champion inside the validation loop, and the null check of the whole procedure.

The number reported for a champion must be the out-of-sample estimate of everything that
produced it — tuning *and* the choice among candidates (Cawley GC, Talbot NLC 2010, JMLR
11:2079; Varma S, Simon R 2006, BMC Bioinformatics 7:91). Picking the best of several
cross-validated estimates and reporting that estimate is optimistic: on pure noise with a dozen
events the best of six candidates read AUROC 0.63.

The champion procedure is: tune every candidate, apply the experiment's champion rule
(``training.champion.choose_champion``) to each candidate's *inner* cross-validated predictions
on the data given, refit the winner. ``champion_predictions`` runs that choice inside every outer
fold from the candidates' fold results (the outer splits are shared, so each fold's winner
predicts that fold's held-out patients); ``choose_on_cohort`` runs the same choice on the whole
cohort for the registered model. A fold where no candidate passes the rule predicts the training
event rate (no model: no discrimination credited). An experiment may declare a ``primary``
model instead: then there is no choice and its estimates are reported as they are.

``null_distribution`` refits the whole procedure on outcome permutations (Ojala M, Garriga GC
2010, JMLR 11:1833): the reported AUROC must sit clearly above it to mean anything. (The
assessment refits it with one repeat of the outer loop per permutation, which widens the null
distribution: the comparison is conservative and ten permutations stay affordable.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from training.champion import Candidate, choose_champion
from training.experiment import ChampionSpec
from training.resampling import FoldSelection, ValidationResult

NO_MODEL = "(no candidate passed the rule: training event rate)"


@dataclass
class CandidateFolds:
    """One candidate's outer-loop results at one landmark."""

    model: str
    feature_set: str
    result: ValidationResult

    @property
    def label(self) -> str:
        return f"{self.model}/{self.feature_set}"


@dataclass
class ProcedurePredictions:
    """Out-of-fold predictions of the champion procedure and the choice made in every fold."""

    predictions: np.ndarray  # (repeats, n)
    choices: list[dict[str, object]] = field(default_factory=list)  # repeat, fold, chosen

    def choice_counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for c in self.choices:
            out[str(c["chosen"])] = out.get(str(c["chosen"]), 0) + 1
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def _as_candidate(task: str, landmark: str, c: CandidateFolds, sel: FoldSelection) -> Candidate:
    return Candidate(task, landmark, c.model, c.feature_set, "", "", sel.calibrated, sel.metrics)


def pick(
    options: list[tuple[str, str, bool, dict[str, float]]],
    rule: ChampionSpec,
    primary: str | None,
) -> tuple[str | None, str]:
    """The rule's choice among (model, feature_set, calibrated, metrics) options → label, reason.

    ``primary`` (a model name) short-cuts the rule: no selection.
    """
    if primary is not None:
        for model, fs, _, _ in options:
            if model == primary:
                return f"{model}/{fs}", f"{model}/{fs}: declared primary model (no selection)"
        return None, f"the declared primary model {primary} was not fitted"
    cands = [Candidate("", "", m, fs, "", "", cal, met) for m, fs, cal, met in options]
    best, reason = choose_champion(cands, rule)
    return (best.label if best is not None else None), reason


def champion_predictions(
    candidates: list[CandidateFolds],
    y: np.ndarray,
    rule: ChampionSpec,
    primary: str | None = None,
) -> ProcedurePredictions:
    """Out-of-fold predictions of "choose by the rule, refit the winner", fold by fold."""
    if not candidates:
        raise ValueError("no candidate to choose from")
    first = candidates[0].result
    for c in candidates[1:]:
        if len(c.result.test_rows) != len(first.test_rows) or any(
            not np.array_equal(a, b)
            for a, b in zip(c.result.test_rows, first.test_rows, strict=True)
        ):
            raise ValueError(
                f"{c.label} was validated on other outer splits than {candidates[0].label}"
            )
    y_arr = np.asarray(y).astype(int)
    preds = np.full_like(first.predictions, np.nan)
    by_label = {c.label: c for c in candidates}
    choices: list[dict[str, object]] = []
    for i, test in enumerate(first.test_rows):
        r, f = first.selection[i].repeat, first.selection[i].fold
        options = [
            (
                c.model,
                c.feature_set,
                c.result.selection[i].calibrated,
                c.result.selection[i].metrics,
            )
            for c in candidates
            if not c.result.selection[i].constant
        ]
        label, _ = pick(options, rule, primary)
        if label is None:
            train = np.setdiff1d(np.arange(y_arr.size), test)
            preds[r, test] = float(y_arr[train].mean())
            choices.append({"repeat": r, "fold": f, "chosen": NO_MODEL})
        else:
            preds[r, test] = by_label[label].result.predictions[r, test]
            choices.append({"repeat": r, "fold": f, "chosen": label})
    return ProcedurePredictions(preds, choices)


def null_distribution(
    procedure_auroc: Callable[[np.ndarray], float], y: np.ndarray, k: int, seed: int
) -> np.ndarray:
    """The procedure's reported AUROC on ``k`` outcome permutations (whole procedure refitted)."""
    rng = np.random.default_rng(seed + 99_991)
    y_arr = np.asarray(y).astype(int)
    return np.array([procedure_auroc(rng.permutation(y_arr)) for _ in range(k)], dtype=float)


def null_summary(real: float, null: np.ndarray) -> dict[str, float]:
    """Mean, 95th percentile and permutation p-value ((1 + #null ≥ real) / (1 + k))."""
    finite = null[np.isfinite(null)]
    if finite.size == 0:
        return {"null_check_k": 0.0}
    return {
        "null_check_k": float(finite.size),
        "null_auroc_mean": float(finite.mean()),
        "null_auroc_p95": float(np.quantile(finite, 0.95)),
        "null_auroc_max": float(finite.max()),
        "null_p_value": float((1 + np.sum(finite >= real)) / (1 + finite.size)),
    }
