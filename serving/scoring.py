"""From a validated request to risk results: the same ``features`` code as training, then models.

Steps (each patient's data only ever produce that patient's row):

1. the request's records become the three cohort-contract tables (NumPy columns, no DataFrame)
   and go through ``features.validate.validate_frames`` — the validator and unit conversion used
   for training cohorts — so a problem is reported with the same rule text, mapped back to the
   request field (``body.measurements.3.unit``); a request skips what only a cohort needs (its
   summary, its digest, the canonical frames) and gets the validated records the feature code
   reads (``features.landmark.Records``);
2. the landmark: the latest severe-CRS landmark the data support (≤ ``as_of_hours``, default
   the latest recorded time) or the one asked for; the toci task is scored at the first timed
   tocilizumab dose when there is one;
3. features with ``features.tasks.assign`` / ``assign_landmarks`` (the serving-time eligibility
   rules and the landmark cut; every landmark of the trend in one pass) and
   ``features.build.feature_matrix``, as ``build_features`` does for training;
4. the loaded champion's calibrated probability, band and validation evidence for the band, and
   (single requests) the explanation from ``training.explain``; warnings for inputs missing and
   imputed, values outside the range the model was trained on (``features.catalog`` plausible
   ranges, where the model's winsoriser clips) and ineligibility with its reason.

Batches run the same steps vectorised over all patients in ``serving.batch``.
"""

from __future__ import annotations

import functools
import itertools
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from features.catalog import CATALOG
from features.cohort import Cohort
from features.landmark import Records
from features.schema import PATIENTS
from serving.explaining import explain_top, probability
from serving.schemas import (
    BATCH_DEFAULTS,
    NOTICE,
    PATIENT_FIELDS,
    BandEvidence,
    Contribution,
    InputWarning,
    RiskRequest,
    RiskResponse,
    TaskResult,
    TrendPoint,
)
from serving.store import LoadedModel, Snapshot

SEVERE = "severe_crs"
TOCI = "toci_refractory"
FILES = {"patients": "patient", "measurements": "measurements", "events": "events"}
_MEAS_COLS = ("hours_from_infusion", "analyte", "value", "unit", "qualifier")
_EVENT_COLS = ("hours_from_infusion", "event", "grade", "dose_mg_per_kg")


class RequestProblems(Exception):
    """Contract problems of a request: 422 with one entry per offending field and rule."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(f"{len(errors)} problem(s)")
        self.errors = errors


# --- request → cohort ------------------------------------------------------------------------
Request = RiskRequest | dict[str, Any]
"""A request: a validated ``RiskRequest``, or a batch record (the same fields as a plain dict,
``serving.schemas.batch_records``; absent keys take ``BATCH_DEFAULTS``)."""


def column(reqs: Sequence[Any], name: str) -> list[Any]:
    """Every request's (or item's) ``name``, read by one C-level getter over the list (absent
    keys of plain dicts: ``BATCH_DEFAULTS`` for request fields, else None)."""
    if reqs and isinstance(reqs[0], dict):
        default = BATCH_DEFAULTS.get(name)
        return [r.get(name, default) for r in reqs]
    return list(map(operator.attrgetter(name), reqs))


@dataclass
class Frames:
    """Cohort-contract tables of the requests (column → array), with each row's origin."""

    tables: dict[str, dict[str, np.ndarray]]
    origin: dict[str, tuple[np.ndarray, np.ndarray]]  # table → (patient index, item index)


def patient_key(i: int) -> str:
    """Internal key of the i-th patient of a request (never the caller's reference)."""
    return f"r{i:06d}"


def _floats(values: Sequence[Any]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def _texts(values: Sequence[Any]) -> np.ndarray:
    """An object array of the cells (str / bool / None), 1-D."""
    out = np.array(values, dtype=object)  # 3× faster than filling np.empty for 10⁵ cells
    if out.ndim != 1:  # a cell that is itself a sequence: keep it as one cell
        out = np.empty(len(values), dtype=object)
        out[:] = values
    return out


_PATIENT_KIND = {c.name: c.dtype for c in PATIENTS.columns}


def _items(requests: Sequence[Request], name: str) -> tuple[list[Any], np.ndarray, np.ndarray]:
    """Every request's ``name`` items (measurements or events) in order, with their origin."""
    lists = column(requests, name)
    counts = np.fromiter(map(len, lists), dtype=np.int64, count=len(lists))
    items = list(itertools.chain.from_iterable(lists))
    patient = np.repeat(np.arange(len(lists), dtype=np.int64), counts)
    item = np.arange(len(items), dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
    return items, patient, item


def to_frames(requests: Sequence[Request]) -> Frames:
    """The requests' records as the three cohort tables (units as given).

    Columns are NumPy arrays (``features.validate`` takes them as they are): no DataFrame is
    built for a request, the validator's canonical cohort is the first one. Values are read
    with one C-level getter per item (``operator.itemgetter`` / ``attrgetter``).
    """
    n = len(requests)
    keys = _texts([patient_key(i) for i in range(n)])
    dicts = n > 0 and isinstance(requests[0], dict)
    pats = column(requests, "patient")
    patients: dict[str, np.ndarray] = {"patient_id": keys, "center": _texts(["service"] * n)}
    for name in PATIENT_FIELDS:
        values = column(pats, name)
        patients[name] = _floats(values) if _PATIENT_KIND[name] == "float" else _texts(values)

    ms, m_pat, m_item = _items(requests, "measurements")
    get = operator.itemgetter if dicts else operator.attrgetter
    k = len(ms)

    def read(name: str, dtype: Any) -> np.ndarray:  # one C loop per column, no list between
        return np.fromiter(map(get(name), ms), dtype=dtype, count=k)

    measurements = {
        "patient_id": keys[m_pat],
        "hours_from_infusion": read("hours_from_infusion", np.float64),
        "analyte": read("analyte", object),
        "value": read("value", np.float64),
        "unit": read("unit", object),
        "qualifier": _texts(column(ms, "qualifier")) if dicts else read("qualifier", object),
    }
    es, e_pat, e_item = _items(requests, "events")
    if dicts:
        e_rows = [
            (e.get("hours_from_infusion"), e["event"], e.get("grade"), e.get("dose_mg_per_kg"))
            for e in es
        ]
    else:
        e_rows = [(e.hours_from_infusion, e.event, e.grade, e.dose_mg_per_kg) for e in es]
    e_cols = [[row[k] for row in e_rows] for k in range(4)]
    events = {
        "patient_id": keys[e_pat],
        "hours_from_infusion": _floats(e_cols[0]),
        "event": _texts(e_cols[1]),
        "grade": _floats(e_cols[2]),
        "dose_mg_per_kg": _floats(e_cols[3]),
    }
    every = np.arange(n, dtype=np.int64)
    origin = {
        "patients": (every, np.full(n, -1, dtype=np.int64)),
        "measurements": (m_pat, m_item),
        "events": (e_pat, e_item),
    }
    return Frames({"patients": patients, "measurements": measurements, "events": events}, origin)


_TABLE_OF_FILE = {v: k for k, v in FILES.items()}
_FIELD_OF_TABLE = {"patients": "patient", "measurements": "measurements", "events": "events"}


def _loc(frames: Frames, problem: Any, batch: bool) -> list[str | int]:
    table = _TABLE_OF_FILE.get(problem.file)
    loc: list[str | int] = ["body"]
    if table is None:
        return loc
    patient, item = frames.origin[table]
    if problem.row is not None and 1 <= problem.row <= len(patient):
        i, j = int(patient[problem.row - 1]), int(item[problem.row - 1])
        if batch:
            loc += ["patients", i]
        loc.append(_FIELD_OF_TABLE[table])
        if j >= 0:
            loc.append(j)
    else:
        loc.append(_FIELD_OF_TABLE[table])
    if problem.column and problem.column not in ("patient_id", "center"):
        loc.append(problem.column)
    return loc


def _message(problem: Any) -> str:
    text = problem.rule
    if problem.value is not None:
        text = f"{text} (value {problem.value})"
    if problem.more:
        text += f" (… and {problem.more:,} more)"
    return text


@dataclass
class Validated:
    """The requests validated into what the feature code reads (no canonical frames).

    ``records``: measurements and events as ``features.landmark.Records`` (patient code = the
    request's index in the batch); ``patients``: the patients table's typed columns;
    ``warnings`` per request index. ``cohort`` builds the canonical frames on demand.
    """

    records: Records
    patients: dict[str, Any]
    warnings: dict[int, list[InputWarning]]
    tables: dict[str, dict[str, np.ndarray]]

    @functools.cached_property
    def cohort(self) -> Cohort:
        """The requests as a canonical :class:`Cohort` (frames; validated again, for callers
        that want the frames — scoring itself never does)."""
        from features.validate import validate_frames

        report = validate_frames(self.tables, "request", files=FILES, summary=False)
        assert report.cohort is not None
        return report.cohort


def validate_requests(requests: Sequence[Request], batch: bool = False) -> Validated:
    """The requests validated by the cohort contract's code, or :class:`RequestProblems` naming
    every field (the records are what the feature code computes on: no frame is built)."""
    return validate_frames_of(to_frames(requests), batch)


def validate_frames_of(frames: Frames, batch: bool = False) -> Validated:
    """:func:`validate_requests` on tables already built from the requests."""
    from features.validate import validate_frames

    report = validate_frames(
        frames.tables,
        "request",
        files=FILES,
        summary=False,
        digest=False,
        records=True,
        frames=False,
    )
    if not report.ok or report.records is None or report.patient_columns is None:
        errors = [
            {"loc": _loc(frames, p, batch), "msg": _message(p), "type": "contract"}
            for p in report.errors
        ]
        raise RequestProblems(errors or [{"loc": ["body"], "msg": "invalid", "type": "contract"}])
    warnings: dict[int, list[InputWarning]] = {}
    for p in report.warnings:
        table = _TABLE_OF_FILE.get(p.file)
        if table is None or p.row is None or not 1 <= p.row <= len(frames.origin[table][0]):
            continue
        i = int(frames.origin[table][0][p.row - 1])
        field_ = ".".join(str(x) for x in _loc(frames, p, False)[1:])
        warnings.setdefault(i, []).append(InputWarning(code="input", field=field_, message=p.rule))
    return Validated(report.records, report.patient_columns, warnings, frames.tables)


def request_index(valid: Validated) -> np.ndarray:
    """Request index of each patient code of ``valid.records`` (codes follow sorted keys)."""
    keys = np.asarray(valid.patients["patient_id"], dtype=object)
    return np.array([int(str(k)[1:]) for k in keys], dtype=np.int64)


# --- landmarks -------------------------------------------------------------------------------
def severe_hours() -> list[tuple[str, float]]:
    from features.tasks import TASKS

    t = TASKS[SEVERE]
    return list(zip(t.landmarks, t.landmark_hours, strict=True))


def horizon(req: RiskRequest) -> float:
    """Hours from infusion up to which the request has data (``as_of_hours`` if given)."""
    if req.as_of_hours is not None:
        return float(req.as_of_hours)
    times = [m.hours_from_infusion for m in req.measurements]
    times += [e.hours_from_infusion for e in req.events if e.hours_from_infusion is not None]
    return max([0.0, *times])


def choose_landmark(req: RiskRequest) -> tuple[str, list[str], list[InputWarning]]:
    """(landmark to score, supported landmarks up to it, warnings)."""
    h = horizon(req)
    supported = [name for name, hours in severe_hours() if hours <= h + 1e-9] or ["0h"]
    warnings: list[InputWarning] = []
    if req.landmark is None:
        return supported[-1], supported, warnings
    names = [n for n, _ in severe_hours()]
    if req.landmark not in supported:
        warnings.append(
            InputWarning(
                code="landmark",
                field="landmark",
                message=f"data reach {h:g} h after infusion; scoring at {req.landmark} assumes "
                "nothing was recorded since",
            )
        )
    return req.landmark, names[: names.index(req.landmark) + 1], warnings


# --- per-task results ------------------------------------------------------------------------
def _value_text(value: float, unit: str) -> str:
    if unit == "yes/no":
        return "yes" if value >= 0.5 else "no"
    if abs(value) >= 1000:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.3g}"
    return f"{text} {unit}".strip()


@dataclass(frozen=True)
class InputChecks:
    """Per-model arrays for the input warnings, computed once per loaded model."""

    low: np.ndarray
    high: np.ndarray
    labels: tuple[str, ...]
    units: tuple[str, ...]
    groups: tuple[tuple[str, str, np.ndarray], ...]  # (variable, label, column positions)
    members: np.ndarray  # every group's column positions, group after group
    starts: np.ndarray  # where each group starts in ``members``


def input_checks(columns: Sequence[str]) -> InputChecks:
    """Catalog ranges and variable groups of a model's input columns."""
    specs = [CATALOG.get(c) for c in columns]
    low = np.array([s.low if s else -np.inf for s in specs], dtype=float)
    high = np.array([s.high if s else np.inf for s in specs], dtype=float)
    by_var: dict[str, list[int]] = {}
    for j, (c, s) in enumerate(zip(columns, specs, strict=True)):
        if s is None or c.endswith("_missing") or s.kind == "count":
            continue
        by_var.setdefault(s.variable, []).append(j)
    groups = tuple(
        (var, CATALOG[columns[js[0]]].label.split(",")[0], np.array(js))
        for var, js in by_var.items()
    )
    sizes = [len(js) for js in by_var.values()]
    return InputChecks(
        low,
        high,
        tuple(s.label if s else c for c, s in zip(columns, specs, strict=True)),
        tuple(s.unit if s else "" for s in specs),
        groups,
        np.array([j for js in by_var.values() for j in js], dtype=np.int64),
        np.cumsum([0, *sizes[:-1]], dtype=np.int64),
    )


_CHECKS: dict[tuple[str, ...], InputChecks] = {}


def input_warnings(
    model: LoadedModel, values: np.ndarray, effect: dict[str, float] | None = None
) -> list[InputWarning]:
    """Missing-and-imputed variables and values outside the range the model was trained on.

    ``values``: the model's input row (float64, NaN = missing). The range is the catalog's
    plausible range, which is where the model's winsoriser clips (``features.transformers``).
    ``effect`` (variable → SHAP log-odds) limits the missing-input warnings to variables whose
    imputed value moved this patient's score (a variable the model never uses, e.g. an analyte
    absent from the training cohort, is imputed without effect and not reported).
    """
    checks = _CHECKS.get(model.columns)
    if checks is None:
        checks = _CHECKS.setdefault(model.columns, input_checks(model.columns))
    out: list[InputWarning] = []
    if checks.groups:  # variables with every column missing, in group order (one reduceat)
        all_missing = np.logical_and.reduceat(np.isnan(values[checks.members]), checks.starts)
    else:
        all_missing = np.zeros(0, dtype=bool)
    for g in np.flatnonzero(all_missing).tolist():
        var, label, _ = checks.groups[g]
        if effect is None or abs(effect.get(var, 0.0)) >= 1e-12:
            out.append(
                InputWarning.model_construct(
                    code="missing_imputed",
                    field=var,
                    message=f"{label}: not available at {model.landmark}; the model imputes "
                    "the training median",
                )
            )
    with np.errstate(invalid="ignore"):
        outside = np.flatnonzero((values < checks.low) | (values > checks.high))
    for j in outside:
        v, lo, hi, unit = float(values[j]), checks.low[j], checks.high[j], checks.units[j]
        edge = lo if v < lo else hi
        out.append(
            InputWarning.model_construct(
                code="outside_training_range",
                field=model.columns[j],
                message=f"{checks.labels[j]} {_value_text(v, unit)} is outside the range used "
                f"in training ({lo:g}–{hi:g} {unit}); the model treats it as {edge:g}",
            )
        )
    return out


def _evidence(model: LoadedModel, p: float) -> tuple[str, BandEvidence | None]:
    name, band = model.band(p)
    if band is None:
        return name, None
    return name, BandEvidence.model_construct(
        band=band.name,
        low=band.low,
        high=band.high,
        n=band.n,
        events=band.events,
        observed=band.observed,
        ci_low=band.ci_low,
        ci_high=band.ci_high,
    )


def _contribution(c: Any) -> Contribution:
    """A ``training.explain.Contribution`` in the API's form (values are ours: no re-validation)."""
    return Contribution.model_construct(
        variable=str(c.variable),
        label=str(c.feature_label or c.label),
        value_text=str(c.value_text),
        contribution=float(c.log_odds),
        text=str(c.text),
    )


def not_scored(task: str, landmark: str, reason: str, model: LoadedModel | None) -> TaskResult:
    """Result for a patient the task does not score (values are ours: no re-validation)."""
    return TaskResult.model_construct(
        task=task,
        landmark=landmark,
        eligible=False,
        reason=reason,
        probability=None,
        band=None,
        thresholds=list(model.thresholds) if model else [],
        uncertainty=None,
        base_value=None,
        log_odds=None,
        other_contribution=None,
        contributions=[],
        warnings=[InputWarning.model_construct(code="not_eligible", field=None, message=reason)],
        model=model.name if model else None,
        version=model.version if model else None,
    )


def scored(model: LoadedModel, x: np.ndarray, *, explain: bool, top_k: int) -> TaskResult:
    """Result of one eligible patient (``x``: the model's input row, float64, NaN = missing)."""
    ex = explain_top(model.model, model.explainer, x, top_k if explain else 0)
    band, evidence = _evidence(model, ex.probability)
    return TaskResult.model_construct(  # values are ours: no re-validation
        task=model.task,
        landmark=model.landmark,
        eligible=True,
        probability=ex.probability,
        band=band,
        thresholds=list(model.thresholds),
        uncertainty=evidence,
        base_value=ex.base_value,
        log_odds=ex.log_odds,
        other_contribution=ex.other if explain and ex.other is not None else None,
        contributions=[_contribution(c) for c in ex.contributions[:top_k]] if explain else [],
        warnings=input_warnings(model, x, ex.effects),
        model=model.name,
        version=model.version,
    )


# --- one patient -----------------------------------------------------------------------------
_INDEX: dict[tuple[str, ...], np.ndarray] = {}


def feature_index(columns: Sequence[str]) -> np.ndarray:
    """Positions of ``columns`` (a model's inputs) in ``features.build.FEATURE_COLUMNS``: a
    constant per model, computed once."""
    key = tuple(columns)
    idx = _INDEX.get(key)
    if idx is None:
        from features.build import COLUMN

        idx = _INDEX.setdefault(key, np.array([COLUMN[c] for c in key], dtype=np.int64))
    return idx


@dataclass(frozen=True)
class PatientRow:
    """One patient's features at one landmark, or why the patient is not eligible there."""

    eligible: bool
    reason: str
    values: np.ndarray | None = None  # every feature, ``features.build.FEATURE_COLUMNS`` order
    names: tuple[str, ...] = ()  # the landmark's catalog columns, in order

    def vector(self, columns: Sequence[str]) -> np.ndarray:
        """The features ``columns`` (a model's inputs) as a float64 vector."""
        assert self.values is not None
        return self.values[feature_index(columns)]

    @property
    def X(self) -> pd.DataFrame | None:
        """The row as the one-row feature table ``features.build`` makes (catalog columns)."""
        if self.values is None:
            return None
        return pd.DataFrame(self.vector(self.names).reshape(1, -1), columns=list(self.names))


def patient_rows(
    cohort: Cohort | Records,
    task: str,
    landmarks: Sequence[str],
    baseline: np.ndarray | None = None,
) -> dict[str, PatientRow]:
    """A one-patient cohort's feature row at each landmark, with the training feature code.

    The steps of ``features.build.build_features`` (records once → ``assign`` with the
    serving-time eligibility rules and the landmark cut → ``feature_matrix``) without the
    table, its cohort summary (missingness, subgroups) or any DataFrame. ``cohort``: a
    :class:`Cohort`, or its records with ``baseline`` = ``patient_features`` of its patients
    (the time-free features, computed once for every task and landmark). The unit tests check
    the rows equal ``build_patient_features``.
    """
    from features.build import feature_matrix, patient_features, prepare
    from features.tasks import assign, assign_landmarks

    if isinstance(cohort, Records):
        records = cohort
        if baseline is None:
            raise ValueError("patient_rows on records needs the baseline patient features")
    else:
        prepared = prepare(cohort)
        records = prepared.records  # type: ignore[assignment]
        if baseline is None:
            baseline = patient_features(prepared.patients)
    if records.n != 1:
        raise ValueError(f"patient_rows scores one patient, got {records.n}")
    # every landmark in one pass (row i = the patient at landmarks[i])
    a = (
        assign_landmarks(records, task, tuple(landmarks))
        if task == SEVERE
        else assign(records, task, landmarks[0], require_label=False)
    )
    if task != SEVERE and len(landmarks) != 1:
        raise ValueError(f"{task} has one landmark")
    eligible = a.eligible.tolist()
    # features only where some landmark is eligible (every row is the same patient's: no row
    # depends on another, so the matrix of all rows holds the same values as one per row)
    matrix = (
        feature_matrix(a, np.repeat(baseline, len(landmarks), axis=0)) if any(eligible) else None
    )
    out = {}
    for i, lm in enumerate(landmarks):
        if eligible[i]:
            assert matrix is not None
            out[lm] = PatientRow(True, "", matrix[i], _names(task, lm))
        else:
            out[lm] = PatientRow(False, str(a.reason[i]) or "not eligible")
    return out


_NAMES: dict[tuple[str, str], tuple[str, ...]] = {}


def _names(task: str, landmark: str) -> tuple[str, ...]:
    """Catalog columns of a task/landmark (a fixed list: computed once)."""
    names = _NAMES.get((task, landmark))
    if names is None:
        from features.catalog import feature_names

        names = _NAMES.setdefault((task, landmark), tuple(feature_names(task, landmark)))
    return names


def score_request(snapshot: Snapshot, req: RiskRequest, request_id: str) -> RiskResponse:
    """Every task's result, the severe-CRS trend and the warnings for one patient."""
    return score_valid(snapshot, req, validate_requests([req]), request_id)


def request_digest(req: RiskRequest, valid: Validated) -> str:
    """The audit input digest of a validated single request (``serving.digest``: the same
    digest as the patient gets in a batch, as JSON or CSV)."""
    from serving.digest import input_digests

    as_of = np.array([np.nan if req.as_of_hours is None else req.as_of_hours])
    return input_digests(valid.records, valid.patients, as_of, [req.landmark])[0]


def score_valid(
    snapshot: Snapshot, req: RiskRequest, valid: Validated, request_id: str
) -> RiskResponse:
    """:func:`score_request` of a request already validated (``validate_requests([req])``)."""
    from features.build import patient_features

    landmark, trend_lms, lm_warnings = choose_landmark(req)
    cohort = valid.records  # once for every task and landmark
    baseline = patient_features(valid.patients)
    rows = patient_rows(cohort, SEVERE, trend_lms, baseline)
    results: list[TaskResult] = []
    trend: list[TrendPoint] = []
    for lm in trend_lms:
        model = snapshot.get(SEVERE, lm)
        row = rows[lm]
        if lm == landmark:
            if model is None:
                results.append(not_scored(SEVERE, lm, f"no champion registered for {lm}", None))
            elif row.values is None:
                results.append(not_scored(SEVERE, lm, row.reason, model))
            else:
                results.append(
                    scored(model, row.vector(model.columns), explain=req.explain, top_k=req.top_k)
                )
        p = None
        if model is not None and row.values is not None:
            p = (
                results[-1].probability
                if lm == landmark
                else probability(model.model, model.explainer, row.vector(model.columns))
            )
        trend.append(
            TrendPoint.model_construct(
                landmark=lm,
                eligible=row.eligible,
                probability=p,
                band=model.band(p)[0] if (model is not None and p is not None) else None,
                version=model.version if model else None,
            )
        )
    toci = snapshot.get(TOCI, "first_toci")
    t_row = patient_rows(cohort, TOCI, ["first_toci"], baseline)["first_toci"]
    if toci is None:
        results.append(not_scored(TOCI, "first_toci", "no champion registered", None))
    elif t_row.values is None:
        results.append(not_scored(TOCI, "first_toci", t_row.reason, toci))
    else:
        results.append(
            scored(toci, t_row.vector(toci.columns), explain=req.explain, top_k=req.top_k)
        )
    return RiskResponse.model_construct(  # built from validated input and our own values
        request_id=request_id,
        patient_ref=req.patient_ref,
        landmark=landmark,
        supported_landmarks=trend_lms,
        results=results,
        trend=trend,
        warnings=[*lm_warnings, *valid.warnings.get(0, [])],
        notice=NOTICE,
    )
