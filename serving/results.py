"""One task result per patient, built the same way for a single request and for a batch.

Given a model and, per patient, the eligibility decided by ``features.tasks`` at the landmark,
whether the outcome was already reached later in the data, the full feature row and how far
the data reach, :func:`task_results` decides the status — ``not_eligible``,
``insufficient_data`` (below ``features.minimum_inputs``: no probability, no band),
``scored`` — and builds the result as a plain dict in the ``TaskResult`` shape: probability
(``serving.explaining.probabilities``, the one path), band with its validation evidence,
interval (``training.interval``), the headline in clinical words, warnings
(``serving.checks``, the after-landmark data) and, when asked, the reasons in probability
points (``serving.wording``).
"""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np

from features.build import COLUMN, FEATURE_COLUMNS
from features.minimum_inputs import insufficient_text, missing_inputs
from features.tasks import get_task
from serving import wording
from serving.bands import band_index, band_names
from serving.checks import ModelChecks, model_checks, row_warnings
from serving.explaining import explain_top, probabilities, used_variables, without
from serving.loading import LoadedModel
from training.explain_attribution import AFTER_TOCI_FLAGS, toci_flags
from training.interval import COVERS as INTERVAL_TEXT

INTERVAL_COVERS = INTERVAL_TEXT  # what the per-patient interval covers (training.interval)

_CHECKS: weakref.WeakKeyDictionary[Any, ModelChecks] = weakref.WeakKeyDictionary()
_FLAG_INDEX = np.array([COLUMN[f] for f in AFTER_TOCI_FLAGS], dtype=np.int64)
_INDEX: dict[tuple[str, ...], np.ndarray] = {}


def checks_of(model: LoadedModel) -> ModelChecks:
    """The model's training-distribution checks, computed once per loaded estimator.

    Keyed by the estimator object itself (weakly: a reloaded or freed model takes its entry
    with it), not by registry name and version, which another store may give to another
    model (tests, or a service pointed at a new registry)."""
    c = _CHECKS.get(model.model)
    if c is None:
        c = model_checks(model.columns, model.distribution, used_variables(model.explainer))
        _CHECKS[model.model] = c
    return c


def feature_index(columns: Sequence[str]) -> np.ndarray:
    """Positions of ``columns`` (a model's inputs) in ``features.build.FEATURE_COLUMNS``."""
    key = tuple(columns)
    idx = _INDEX.get(key)
    if idx is None:
        idx = _INDEX.setdefault(key, np.array([COLUMN[c] for c in key], dtype=np.int64))
    return idx


def task_of(task: str, hours: Sequence[float] = ()) -> Any:
    """The ``features.tasks`` task object (severe CRS with the served landmark hours)."""
    if task == "severe_crs" and hours:
        return get_task(task, landmark_hours=tuple(sorted(set(hours))))
    return get_task(task)


_EMPTY: dict[tuple[Any, ...], dict[str, Any]] = {}


def empty(
    task: str,
    landmark: str,
    model: LoadedModel | None,
    status: str,
    reason: str,
    missing: tuple[str, ...] = (),
) -> dict:
    """A result without a probability (no model, not eligible, insufficient data); one shared
    dict per distinct result (results are serialised, never changed)."""
    key = (
        task,
        landmark,
        model.name if model else None,
        model.version if model else None,
        status,
        reason,
        missing,
    )
    d = _EMPTY.get(key)
    if d is None:
        d = _EMPTY.setdefault(key, _empty(task, landmark, model, status, reason, missing))
    return d


def _empty(
    task: str,
    landmark: str,
    model: LoadedModel | None,
    status: str,
    reason: str,
    missing: tuple[str, ...],
) -> dict:
    warn = {"insufficient_data": "insufficient_data"}.get(status, "not_eligible")
    return {
        "task": task,
        "landmark": landmark,
        "status": status,
        "eligible": status == "insufficient_data",
        "reason": reason,
        "missing_inputs": list(missing),
        "horizon": horizon_of(task, landmark),
        "probability": None,
        "interval": None,
        "summary": reason[:1].upper() + reason[1:] + ".",
        "band": None,
        "thresholds": list(model.thresholds) if model else [],
        "uncertainty": None,
        "base_value": None,
        "log_odds": None,
        "other_contribution": None,
        "contributions": [],
        "missing_effects": [],
        "warnings": [{"code": warn, "field": None, "message": reason}],
        "model": model.name if model else None,
        "version": model.version if model else None,
    }


_HORIZON: dict[tuple[str, str], str] = {}


def horizon_of(task: str, landmark: str) -> str:
    text = _HORIZON.get((task, landmark))
    if text is None:
        text = _HORIZON.setdefault((task, landmark), wording.horizon_text(task_of(task), landmark))
    return text


_BANDS: dict[tuple[str, str, int], dict[str, Any] | None] = {}


def _band_dict(model: LoadedModel, i: int) -> dict[str, Any] | None:
    """A band's validation evidence in the ``BandEvidence`` shape (built once per band)."""
    key = (model.name, model.version, i)
    if key not in _BANDS:
        d = None
        if i < len(model.bands):
            d = dataclasses.asdict(model.bands[i])
            d["band"] = d.pop("name")
        _BANDS[key] = d
    return _BANDS[key]


def task_results(
    model: LoadedModel,
    task: str,
    landmark: str,
    eligible: np.ndarray,
    reasons: Sequence[str],
    features: np.ndarray,
    data_until: np.ndarray,
    explain: Sequence[bool],
    top_k: Sequence[int],
    light: bool = False,
) -> list[dict[str, Any]]:
    """The results of ``len(eligible)`` patients for one model.

    ``reasons``: per patient, why not eligible ("" = eligible); ``features``: full feature rows
    (``FEATURE_COLUMNS``; rows of ineligible patients are ignored); ``data_until``: the latest
    time in each patient's data (hours; NaN = unknown). ``light``: status, probability and
    band only (a trend point): no warnings, interval or sentence.
    """
    n = len(eligible)
    hours = model.hours
    out: list[dict[str, Any] | None] = [None] * n
    for i in np.flatnonzero(~eligible).tolist():
        out[i] = empty(task, landmark, model, "not_eligible", reasons[i] or "not eligible")
    ok = np.flatnonzero(eligible)
    if len(ok):
        lacking = missing_inputs(task, hours, features[ok], FEATURE_COLUMNS)
        scored_rows = []
        for i, miss in zip(ok.tolist(), lacking, strict=True):
            if miss:
                text = insufficient_text(task, hours, miss)
                out[i] = empty(task, landmark, model, "insufficient_data", text, tuple(miss))
            else:
                scored_rows.append(i)
        if scored_rows:
            idx = np.asarray(scored_rows)
            X = features[idx][:, feature_index(model.columns)]
            p = probabilities(model.model, model.explainer, X, model.columns)
            bands = band_index(p, model.thresholds)
            names = band_names(len(model.thresholds))
            if light:
                for r, i in enumerate(scored_rows):
                    out[i] = {
                        "status": "scored",
                        "probability": float(p[r]),
                        "band": names[int(bands[r])],
                        "version": model.version,
                    }
                return out  # type: ignore[return-value]  # every slot filled above
            lows, highs = (None, None)
            if model.interval is not None:
                lows, highs = model.interval.at(p)
            warns = row_warnings(checks_of(model), model.columns, X, landmark)
            horizon = horizon_of(task, landmark)
            probs = p.tolist()
            band_list = bands.tolist()
            low_list = lows.tolist() if lows is not None else None
            high_list = highs.tolist() if highs is not None else None
            until = data_until.tolist()
            templates = [
                _scored_template(model, task, landmark, horizon, k, names[k])
                for k in range(len(names))
            ]
            sentence = _summaries(model, p, lows, highs, bands, names, horizon)
            after: dict[float, dict[str, Any]] = {}  # one warning per distinct data time
            for r, i in enumerate(scored_rows):
                prob = probs[r]
                b = band_list[r]
                row = dict(templates[b])
                row["probability"] = prob
                lo = hi = None
                if low_list is not None:
                    lo, hi = low_list[r], high_list[r]  # type: ignore[index]  # set together
                    row["interval"] = {**row["interval"], "low": lo, "high": hi}
                row["summary"] = sentence[r]
                w = warns[r]
                if hours is not None and until[i] > hours + 1e-9:
                    note = after.get(until[i])
                    if note is None:
                        note = after[until[i]] = {
                            "code": "after_landmark",
                            "field": None,
                            "message": f"data recorded after {landmark} (up to "
                            f"{until[i]:g} h) are not used by this score",
                        }
                    w = [note, *w]
                row["warnings"] = w
                out[i] = row
                if explain[i]:
                    flags = toci_flags(features[i, _FLAG_INDEX], AFTER_TOCI_FLAGS)
                    _explain(row, model, X[r], int(top_k[i]), prob, flags)
    return out  # type: ignore[return-value]  # every slot filled above


def _summaries(
    model: LoadedModel,
    p: np.ndarray,
    lows: np.ndarray | None,
    highs: np.ndarray | None,
    bands: np.ndarray,
    names: Sequence[str],
    horizon: str,
) -> list[str]:
    """``wording.summary_text`` of every scored row, written once per distinct sentence.

    The sentence reads the probability only as ``wording.in_100`` (below 0.5 in 100, the
    rounded number, or 100 and above) and the interval as its rounded ends in 100, so rows
    equal in those (and in band) get the same text; ``np.rint`` rounds half to even exactly as
    ``round`` does. Rows with a NaN are written one by one (``round`` decides what happens).
    """
    probs = p.tolist()
    low_list = lows.tolist() if lows is not None else None
    high_list = highs.tolist() if highs is not None else None

    def text(r: int) -> str:
        b = int(bands[r])
        return wording.summary_text(
            probs[r],
            low_list[r] if low_list is not None else None,
            high_list[r] if high_list is not None else None,
            names[b],
            model.bands[b] if b < len(model.bands) else None,
            horizon,
        )

    if len(probs) == 1:  # one row (a single request): nothing to share
        return [text(0)]
    k = np.rint(100 * p)
    code = np.where(100 * p < 0.5, -1.0, np.minimum(k, 100.0))
    parts = [code, bands.astype(np.float64)]
    if lows is not None and highs is not None:
        parts += [np.rint(100 * lows), np.rint(100 * highs)]
    keys = np.column_stack(parts)
    if np.isnan(keys).any():
        return [text(r) for r in range(len(probs))]
    _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    texts = [text(r) for r in first.tolist()]
    return [texts[j] for j in inverse.reshape(-1).tolist()]


def _scored_template(
    model: LoadedModel, task: str, landmark: str, horizon: str, band: int, name: str
) -> dict[str, Any]:
    """The parts of a scored result that are the same for every patient in a band."""
    interval = None
    if model.interval is not None:
        interval = {"low": None, "high": None, "level": model.interval.level}
    return {
        "task": task,
        "landmark": landmark,
        "status": "scored",
        "eligible": True,
        "reason": None,
        "missing_inputs": [],
        "horizon": horizon,
        "probability": None,
        "interval": interval,
        "summary": None,
        "band": name,
        "thresholds": list(model.thresholds),
        "uncertainty": _band_dict(model, band),
        "base_value": None,
        "log_odds": None,
        "other_contribution": None,
        "contributions": [],
        "missing_effects": [],
        "warnings": [],
        "model": model.name,
        "version": model.version,
    }


def _explain(
    result: dict[str, Any],
    model: LoadedModel,
    x: np.ndarray,
    k: int,
    p: float,
    flags: dict[str, float] | None = None,
) -> None:
    """Add the reasons (in probability points) and, apart, the effect of unmeasured inputs.
    ``flags``: the full row's ``<analyte>_after_toci`` flags (issue 11 §5)."""
    ex = explain_top(model.model, model.explainer, x, k, model.columns, p, flags)
    if ex.log_odds is None:
        return
    cs = list(ex.contributions)
    p_without = without(model.explainer, x, ex.log_odds, [float(c.log_odds) for c in cs])
    reasons, missing = [], []
    for c, pw in zip(cs, p_without, strict=True):
        pts = wording.points(p, pw)
        label = str(c.feature_label or c.label)
        if c.value is None:
            missing.append(
                {
                    "variable": str(c.variable),
                    "label": str(c.label),
                    "value_text": "not measured",
                    "points": pts,
                    "contribution": float(c.log_odds),
                    "text": wording.missing_text(str(c.label), pts),
                }
            )
            continue
        value = wording.value_words(str(c.feature), c.value, str(c.value_text))
        reasons.append(
            {
                "variable": str(c.variable),
                "label": label,
                "value_text": value,
                "points": pts,
                "contribution": float(c.log_odds),
                "text": wording.reason_text(label, value, pts),
            }
        )
    result.update(
        base_value=ex.base_value,
        log_odds=ex.log_odds,
        other_contribution=ex.other,
        contributions=reasons,
        missing_effects=missing,
    )
