"""From a validated request to risk results: the same ``features`` code as training, then models.

Steps (each patient's data only ever produce that patient's row):

1. ``serving.conversion``: the request's records become the cohort-contract tables, validated
   by the training cohorts' code (problems named by request field), as the records the
   feature code reads (``features.records.Records``);
2. the landmark: the latest registered severe-CRS landmark the data support (≤
   ``as_of_hours``, default the latest recorded time) or the one asked for (whole hours 0–336);
   the toci task at each registered toci landmark;
3. features with ``features.tasks.assign`` / ``assign_landmarks`` (the eligibility rules and
   the landmark cut; every landmark of the trend in one pass) and
   ``features.build.feature_matrix``, as ``build_features`` does for training; the same
   eligibility rule at the end of the data tells whether the outcome was already reached after
   the landmark (then "not eligible");
4. ``serving.results.task_results``: minimum inputs (else "insufficient data"), the one
   probability path, band with its validation evidence, interval, warnings against the
   training distribution, reasons in clinical words.

Batches run the same steps vectorised over all patients in ``serving.batch``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from features.build import FEATURE_COLUMNS, feature_matrix, patient_features, prepare
from features.catalog import feature_names
from features.cohort import Cohort
from features.errors import CrsRiskError
from features.grading import Course, course_of_records, derived_of
from features.records import Records
from features.tasks import (
    TASKS,
    assign,
    assign_landmarks,
    get_task,
    landmark_rules,
    reasons,
)
from serving.conversion import Validated, validate_requests
from serving.digest import input_digests
from serving.loading import LoadedModel, Snapshot
from serving.results import empty, feature_index, task_of, task_results
from serving.schemas import (
    NOTICE,
    InputWarning,
    RiskRequest,
    RiskResponse,
    TaskResult,
    TrendPoint,
)

SEVERE = "severe_crs"
TOCI = "toci_refractory"


# --- landmarks -------------------------------------------------------------------------------
def severe_hours(snapshot: Snapshot | None = None) -> list[tuple[str, float]]:
    """Severe-CRS landmarks served, by hours: the registered models' (discovered in the
    registry), else the task's defaults."""
    if snapshot is not None:
        found = sorted(
            {
                (m.landmark, float(m.hours))
                for m in snapshot.models.values()
                if m.task == SEVERE and m.hours is not None
            },
            key=lambda t: t[1],
        )
        if found:
            return found
    t = TASKS[SEVERE]
    return list(zip(t.landmarks, t.landmark_hours, strict=True))


def data_until(req: RiskRequest) -> float:
    """The latest time in the request's data (0 when nothing is after infusion)."""
    times = [m.hours_from_infusion for m in req.measurements]
    times += [e.hours_from_infusion for e in req.events if e.hours_from_infusion is not None]
    return max([0.0, *times])


def horizon(req: RiskRequest) -> float:
    """Hours from infusion up to which the request has data (``as_of_hours`` if given)."""
    if req.as_of_hours is not None:
        return float(req.as_of_hours)
    return data_until(req)


def choose_landmark(
    req: RiskRequest, snapshot: Snapshot | None = None
) -> tuple[str, list[str], list[InputWarning]]:
    """(landmark to score, served landmarks up to it, warnings)."""
    served = severe_hours(snapshot)
    h = horizon(req)
    supported = [name for name, hours in served if hours <= h + 1e-9] or [served[0][0]]
    warnings: list[InputWarning] = []
    if req.landmark is None:
        return supported[-1], supported, warnings
    names = [n for n, _ in served]
    hours = float(req.landmark[:-1])
    if hours > h + 1e-9:
        warnings.append(
            InputWarning(
                code="landmark",
                field="landmark",
                message=f"data reach {h:g} h after infusion; scoring at {req.landmark} assumes "
                "nothing was recorded since",
            )
        )
    trend = [n for n, hrs in served if hrs <= hours + 1e-9]
    if req.landmark not in names:
        trend.append(req.landmark)
    return req.landmark, trend, warnings


def reached_reasons(records: Records, full_course: Course | None = None) -> np.ndarray:
    """Per patient code: why the outcome is already reached somewhere in the data ("" = not),
    by the same ``features.tasks`` eligibility rule as at a landmark. ``full_course``: the grade
    course of ``records`` when the caller has it (``course_of_records``; derived or not, the
    same course)."""
    # the landmark rules on the uncut records: "at the landmark" becomes "anywhere in the data"
    course = course_of_records(records) if full_course is None else full_course
    rules = landmark_rules(records, course, get_task(SEVERE), "end of data")
    return np.asarray(reasons(records.n, rules), dtype=object)


def after_reason(reason: str, landmark: str) -> str:
    """The not-eligible reason for an outcome reached after the scored landmark."""
    rule = reason.replace("at or before the landmark", "in the data").replace(
        " (outcome already reached)", ""
    )
    return f"outcome already reached after the {landmark} landmark: {rule}; not scored"


# --- one patient -----------------------------------------------------------------------------
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
    task: Any,
    landmarks: Sequence[str],
    baseline: np.ndarray | None = None,
    full_course: Course | None = None,
) -> dict[str, PatientRow]:
    """A one-patient cohort's feature row at each landmark, with the training feature code.

    The steps of ``features.build.build_features`` (records once → ``assign`` with the
    serving-time eligibility rules and the landmark cut → ``feature_matrix``) without the
    table. ``task``: a task name or ``features.tasks.Task`` (severe CRS with the served
    landmark hours). ``cohort``: a :class:`Cohort`, or its records with ``baseline`` =
    ``patient_features`` of its patients. ``full_course``: the uncut records' grade course, for
    a toci landmark (``assign``'s, shared by a request's landmarks). The unit tests check the
    rows equal ``build_patient_features``.
    """
    task_obj = get_task(task)
    if task_obj.name == SEVERE:
        hours = {float(lm[:-1]) for lm in landmarks}
        if not hours <= set(task_obj.landmark_hours):
            task_obj = task_of(SEVERE, (*task_obj.landmark_hours, *hours))
    if isinstance(cohort, Records):
        records = cohort
        if baseline is None:
            raise ValueError("patient_rows on records needs the baseline patient features")
    else:
        prepared = prepare(cohort)
        if prepared.records is None:  # prepare() always builds them
            raise ValueError("features.build.prepare returned a cohort without records")
        records = prepared.records
        if baseline is None:
            baseline = patient_features(prepared.patients)
    if records.n != 1:
        raise ValueError(f"patient_rows scores one patient, got {records.n}")
    if task_obj.name != SEVERE and len(landmarks) != 1:
        raise ValueError(f"{task_obj.name} has one landmark")
    a = (
        assign_landmarks(records, task_obj, tuple(landmarks))
        if task_obj.name == SEVERE
        else assign(records, task_obj, landmarks[0], require_label=False, full_course=full_course)
    )
    eligible = a.eligible.tolist()
    matrix = (
        feature_matrix(a, np.repeat(baseline, len(landmarks), axis=0)) if any(eligible) else None
    )
    out = {}
    for i, lm in enumerate(landmarks):
        if eligible[i]:
            assert matrix is not None
            out[lm] = PatientRow(True, "", matrix[i], _names(task_obj.name, lm))
        else:
            out[lm] = PatientRow(False, str(a.reason[i]) or "not eligible")
    return out


_NAMES: dict[tuple[str, str], tuple[str, ...]] = {}


def _names(task: str, landmark: str) -> tuple[str, ...]:
    """Catalog columns of a task/landmark (a fixed list: computed once)."""
    names = _NAMES.get((task, landmark))
    if names is None:
        try:
            names = tuple(feature_names(task, landmark))
        except Exception:  # a landmark the catalog does not list (e.g. a new severe hour)
            names = ()
        names = _NAMES.setdefault((task, landmark), names)
    return names


def score_request(snapshot: Snapshot, req: RiskRequest, request_id: str) -> RiskResponse:
    """Every task's result, the severe-CRS trend and the warnings for one patient."""
    return score_valid(snapshot, req, validate_requests([req]), request_id)


def request_digest(req: RiskRequest, valid: Validated) -> str:
    """The audit input digest of a validated single request (``serving.digest``: the same
    digest as the patient gets in a batch, as JSON or CSV)."""
    as_of = np.array([np.nan if req.as_of_hours is None else req.as_of_hours])
    return input_digests(valid.records, valid.patients, as_of, [req.landmark])[0]


def one_result(
    model: LoadedModel | None,
    task: str,
    landmark: str,
    row: PatientRow,
    reached: str,
    until: float,
    explain: bool,
    top_k: int,
    light: bool = False,
) -> dict[str, Any]:
    """One patient's result for one model (``serving.results``, as a batch builds it)."""
    if model is None:
        return empty(task, landmark, None, "no_model", f"no champion registered for {landmark}")
    eligible = row.eligible and not reached
    reason = (
        row.reason if not row.eligible else (after_reason(reached, landmark) if reached else "")
    )
    features = (
        row.values.reshape(1, -1) if row.values is not None else np.full((1, _n_features()), np.nan)
    )
    return task_results(
        model,
        task,
        landmark,
        np.array([eligible]),
        [reason],
        features,
        np.array([until]),
        [explain],
        [top_k],
        light,
    )[0]


@functools.cache
def _n_features() -> int:
    return len(FEATURE_COLUMNS)


def score_valid(
    snapshot: Snapshot, req: RiskRequest, valid: Validated, request_id: str
) -> RiskResponse:
    """:func:`score_request` of a request already validated (``validate_requests([req])``)."""
    landmark, trend_lms, lm_warnings = choose_landmark(req, snapshot)
    records = valid.records
    baseline = patient_features(valid.patients)
    severe_task = task_of(SEVERE, [h for _, h in severe_hours(snapshot)])
    rows = patient_rows(records, severe_task, trend_lms, baseline)
    until = data_until(req)
    # an outcome after the landmark needs data after it: no data there, nothing to check
    lm_hours = float(landmark[:-1])
    # the uncut course, computed once: the toci landmarks and the reached check share it
    full = course_of_records(records, derived_of(records))
    reached = str(reached_reasons(records, full)[0]) if until > lm_hours else ""
    results: list[dict[str, Any]] = []
    trend: list[TrendPoint] = []
    for lm in trend_lms:
        model = snapshot.get(SEVERE, lm)
        current = lm == landmark
        r = one_result(
            model,
            SEVERE,
            lm,
            rows[lm],
            reached if current else "",
            until if current else float(lm[:-1]),
            req.explain and current,
            req.top_k,
            light=not current,
        )
        if current:
            results.append(r)
        trend.append(
            TrendPoint.model_construct(
                landmark=lm,
                eligible=r["status"] in ("scored", "insufficient_data"),
                probability=r.get("probability"),
                band=r.get("band"),
                version=r.get("version"),
            )
        )
    for lm in toci_landmarks(snapshot):
        model = snapshot.get(TOCI, lm)
        try:
            t_row = patient_rows(records, TOCI, [lm], baseline, full)[lm]
        except CrsRiskError as exc:  # a landmark this code version cannot place
            results.append(empty(TOCI, lm, model, "no_model", str(exc)))
            continue
        results.append(one_result(model, TOCI, lm, t_row, "", math.nan, req.explain, req.top_k))
    return RiskResponse.model_construct(
        request_id=request_id,
        patient_ref=req.patient_ref,
        landmark=landmark,
        supported_landmarks=trend_lms,
        results=[TaskResult.model_validate(r) for r in results],
        trend=trend,
        warnings=[*lm_warnings, *valid.warnings.get(0, [])],
        notice=NOTICE,
    )


def toci_landmarks(snapshot: Snapshot) -> list[str]:
    """The toci landmarks with a registered model (the first dose when none is)."""
    found = [m.landmark for m in snapshot.models.values() if m.task == TOCI]
    order = {"decision": 0, "first_toci": 1}
    return sorted(set(found), key=lambda x: order.get(x, 2)) or ["first_toci"]
