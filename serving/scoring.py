"""From a validated request to risk results: the same ``features`` code as training, then models.

Steps (each patient's data only ever produce that patient's row):

1. the request's records become the three cohort-contract tables (NumPy columns, no DataFrame)
   and go through ``features.validation.validate_tables`` — the validator and unit conversion used
   for training cohorts — so a problem is reported with the same rule text, mapped back to the
   request field (``body.measurements.3.unit``); a request skips what only a cohort needs (its
   summary, its digest, the canonical frames) and gets the validated records the feature code
   reads (``features.records.Records``);
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
import itertools
import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from features.cohort import Cohort
from features.errors import CrsRiskError
from features.records import Records
from features.schema import PATIENTS
from serving.results import empty, feature_index, task_of, task_results
from serving.schemas import (
    BATCH_DEFAULTS,
    NOTICE,
    PATIENT_FIELDS,
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

    Columns are NumPy arrays (``features.validation`` takes them as they are): no DataFrame is
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
    """The rule broken, never the submitted value (it may be patient data)."""
    text = problem.rule
    if problem.more:
        text += f" (… and {problem.more:,} more)"
    return text


@dataclass
class Validated:
    """The requests validated into what the feature code reads (no canonical frames).

    ``records``: measurements and events as ``features.records.Records`` (patient code = the
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
        from features.validation import validate_frames

        report = validate_frames(self.tables, "request", files=FILES, summary=False)
        assert report.cohort is not None
        return report.cohort


def validate_requests(requests: Sequence[Request], batch: bool = False) -> Validated:
    """The requests validated by the cohort contract's code, or :class:`RequestProblems` naming
    every field (the records are what the feature code computes on: no frame is built)."""
    return validate_frames_of(to_frames(requests), batch)


def validate_frames_of(frames: Frames, batch: bool = False) -> Validated:
    """:func:`validate_requests` on tables already built from the requests."""
    from features.validation import validate_frames

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
    from features.tasks import TASKS

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


def reached_reasons(records: Records) -> np.ndarray:
    """Per patient code: why the outcome is already reached somewhere in the data ("" = not),
    by the same ``features.tasks`` eligibility rule as at a landmark."""
    from features.grading import course_of_records
    from features.tasks import get_task, landmark_rules, reasons

    # the landmark rules on the uncut records: "at the landmark" becomes "anywhere in the data"
    rules = landmark_rules(records, course_of_records(records), get_task(SEVERE), "end of data")
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
) -> dict[str, PatientRow]:
    """A one-patient cohort's feature row at each landmark, with the training feature code.

    The steps of ``features.build.build_features`` (records once → ``assign`` with the
    serving-time eligibility rules and the landmark cut → ``feature_matrix``) without the
    table. ``task``: a task name or ``features.tasks.Task`` (severe CRS with the served
    landmark hours). ``cohort``: a :class:`Cohort`, or its records with ``baseline`` =
    ``patient_features`` of its patients. The unit tests check the rows equal
    ``build_patient_features``.
    """
    from features.build import feature_matrix, patient_features, prepare
    from features.tasks import assign, assign_landmarks, get_task

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
        records = prepared.records  # type: ignore[assignment]
        if baseline is None:
            baseline = patient_features(prepared.patients)
    if records.n != 1:
        raise ValueError(f"patient_rows scores one patient, got {records.n}")
    if task_obj.name != SEVERE and len(landmarks) != 1:
        raise ValueError(f"{task_obj.name} has one landmark")
    a = (
        assign_landmarks(records, task_obj, tuple(landmarks))
        if task_obj.name == SEVERE
        else assign(records, task_obj, landmarks[0], require_label=False)
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
        from features.catalog import feature_names

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
    from serving.digest import input_digests

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
    from features.build import FEATURE_COLUMNS

    return len(FEATURE_COLUMNS)


def score_valid(
    snapshot: Snapshot, req: RiskRequest, valid: Validated, request_id: str
) -> RiskResponse:
    """:func:`score_request` of a request already validated (``validate_requests([req])``)."""
    from features.build import patient_features

    landmark, trend_lms, lm_warnings = choose_landmark(req, snapshot)
    records = valid.records
    baseline = patient_features(valid.patients)
    severe_task = task_of(SEVERE, [h for _, h in severe_hours(snapshot)])
    rows = patient_rows(records, severe_task, trend_lms, baseline)
    until = data_until(req)
    # an outcome after the landmark needs data after it: no data there, nothing to check
    lm_hours = float(landmark[:-1])
    reached = str(reached_reasons(records)[0]) if until > lm_hours else ""
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
            t_row = patient_rows(records, TOCI, [lm], baseline)[lm]
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
