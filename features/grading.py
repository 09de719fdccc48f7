"""ASTCT CRS grade: derivation from timed support rows, and the per-patient grade course.

Grading follows the ASTCT 2019 consensus (Lee DW et al., Biol Blood Marrow Transplant
2019;25:625; table in ../shared/clinical-facts.md §1.9):

- grade 1: fever (T ≥ 38.0 °C), no hypotension, no hypoxia;
- grade 2: fever with hypotension not requiring vasopressors and/or hypoxia needing low-flow
  nasal cannula (≤ 6 L/min) or blow-by;
- grade 3: fever with hypotension needing one vasopressor (with or without vasopressin) and/or
  hypoxia needing high-flow nasal cannula (> 6 L/min), facemask, non-rebreather or Venturi mask;
- grade 4: fever with hypotension needing multiple vasopressors (excluding vasopressin) and/or
  hypoxia needing positive pressure (CPAP, BiPAP, intubation and mechanical ventilation).

The grade is the worse of the hypotension and hypoxia criteria. Once tocilizumab or
corticosteroids were given, fever is no longer required (guideline footnote). Grade 5 (death
from CRS) cannot be derived from support rows; it comes only from a recorded ``crs_grade`` 5.

Support rows are measurements (``features.vocabulary``): ``temperature`` (°C), ``hypotension``
(flag), ``vasopressors`` (count, vasopressin excluded), ``vasopressin`` (flag: vasopressin
running), ``oxygen_device`` (:class:`OxygenDevice` code) and ``oxygen_flow`` (L/min). Vasopressin
alone makes grade 3 ("a vasopressor with or without vasopressin"); it never counts toward grade
4's "multiple vasopressors (excluding vasopressin)". Rows arrive at different times, so the
state at a time ``t`` is assembled causally (only rows at or before ``t``): fever = a
temperature ≥ 38.0 °C within the preceding :data:`FEVER_WINDOW_H` hours (inclusive); each
support row holds for at most :data:`SUPPORT_VALID_H` hours or until the next row of the same
kind. A derived grade at ``t`` therefore never depends on anything after ``t``.

Validity of a derived grade: a grade derived at ``t`` stays in force for
:data:`SUPPORT_VALID_H` hours (24 h). When no new support row arrives by then, the derived
course gets an *expiry* step at ``t + 24 h`` whose grade is unknown (NaN): nothing says the grade
is still in force, and nothing says it fell. The expiry is itself causal (it is decided at
``t + 24 h`` by the absence of rows in between). The highest grade reached is unaffected; the
grade *in force* after an expiry is unknown until the next support row (features read it as
missing, the refractory label as "no observed grade").

The *grade course* of a patient is a step function (grade in force from each time on). It comes
from recorded events when the patient has any timed ``crs_onset`` / ``crs_grade`` /
``crs_resolved`` event, otherwise from the support rows when the patient has any, otherwise
from a timed ``crs_max_grade`` ≥ 1 (it is timed at onset: grade 1 from then on, the only part
of the maximum known at onset), otherwise it is empty (grade 0 throughout). The value of a
``crs_max_grade`` (a whole-course summary) and graded events with unknown time never enter the
course: they are not known at their time stamp. They are returned separately as *summary
evidence* for outcome definitions.

The rules are implemented once, on ``features.records.Records`` (:func:`course_of_records`,
:class:`Course`); :func:`grade_course` and :func:`derive_grades` give the same on frames.
Because derivation is causal, the grades derived once from a cohort's records
(:func:`derive_records`) serve every landmark cut from them.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import TypeAlias

import numpy as np
import pandas as pd

from features.landmark import known_at
from features.records import ANALYTE_CODE, EVENT_CODE, Records, code_set, vocabulary_codes
from features.vocabulary import OxygenDevice

FEVER_C = 38.0
LOW_FLOW_MAX_L_PER_MIN = 6.0
FEVER_WINDOW_H = 24.0
SUPPORT_VALID_H = 24.0
SUPPORT_ANALYTES: tuple[str, ...] = (
    "temperature",
    "hypotension",
    "vasopressors",
    "vasopressin",
    "oxygen_device",
    "oxygen_flow",
)
COURSE_EVENTS: tuple[str, ...] = ("crs_onset", "crs_grade", "crs_resolved")
FEVER_EXEMPTING_DRUGS: tuple[str, ...] = ("tocilizumab", "corticosteroids")

_SUPPORT_CODE = {a: ANALYTE_CODE[a] for a in SUPPORT_ANALYTES}
_IS_SUPPORT = code_set(SUPPORT_ANALYTES, ANALYTE_CODE)
_IS_COURSE = code_set(COURSE_EVENTS, EVENT_CODE)
_IS_GRADED_COURSE = code_set(COURSE_EVENTS[:2], EVENT_CODE)  # crs_onset, crs_grade
_IS_FEVER_EXEMPT = code_set(FEVER_EXEMPTING_DRUGS, EVENT_CODE)
_MAX_GRADE = EVENT_CODE["crs_max_grade"]
_RESOLVED = EVENT_CODE["crs_resolved"]

ArrayLike: TypeAlias = np.ndarray | pd.Series | list | float | None


def _arr(x: ArrayLike, n: int | None = None) -> np.ndarray:
    """Float array from input (``None`` → all NaN of length ``n``)."""
    if x is None:
        return np.full(n or 1, np.nan)
    return np.atleast_1d(np.asarray(x, dtype=float))


def is_fever(temperature_c: ArrayLike) -> np.ndarray:
    """Fever per ASTCT: temperature ≥ 38.0 °C (38.0 is fever, 37.9 is not; NaN is not)."""
    t = _arr(temperature_c)
    with np.errstate(invalid="ignore"):
        # Round to 0.01 °C so that values converted from °F (e.g. 100.4 °F → 37.99999…) grade as
        # the thermometer read them.
        return np.round(t, 2) >= FEVER_C


def fever_values(temperature_c: np.ndarray) -> np.ndarray:
    """:func:`is_fever` of a float64 array, without its conversion and warning guard (NaN
    compares False silently): the feature code calls it on every request."""
    return np.round(temperature_c, 2) >= FEVER_C


def hypotension_grade(
    hypotension: ArrayLike, vasopressors: ArrayLike, vasopressin: ArrayLike = None
) -> np.ndarray:
    """Grade implied by the circulation: 2 hypotension without vasopressors, 3 one vasopressor
    (with or without vasopressin) or vasopressin alone, 4 two or more vasopressors.

    ``vasopressors`` counts agents other than vasopressin (the guideline's "multiple vasopressors
    (excluding vasopressin)"); ``vasopressin`` is a flag and never adds to that count. A running
    vasopressor or vasopressin implies hypotension even without a flag.
    """
    hypo = _arr(hypotension)
    vaso = _arr(vasopressors)
    vp = _arr(vasopressin, len(hypo))
    hypo, vaso, vp = np.broadcast_arrays(hypo, vaso, vp)
    return _hypotension_grade(hypo, vaso, vp)


def _hypotension_grade(
    hypo: np.ndarray, vaso: np.ndarray, vasopressin: np.ndarray | None = None
) -> np.ndarray:
    """:func:`hypotension_grade` of aligned float arrays (no conversion or broadcasting; NaN
    compares False without a floating-point warning)."""
    grade = np.zeros(hypo.shape, dtype=np.int8)
    grade[hypo >= 1] = 2
    if vasopressin is not None:
        grade[vasopressin >= 1] = 3
    grade[vaso >= 1] = 3
    grade[vaso >= 2] = 4
    return grade


def hypoxia_grade(oxygen_device: ArrayLike, oxygen_flow: ArrayLike) -> np.ndarray:
    """Grade implied by oxygen support (ASTCT 2019 hypoxia column).

    Nasal cannula ≤ 6 L/min is low-flow (grade 2), > 6 L/min counts as high-flow (grade 3); a
    nasal cannula without a recorded flow is taken as low-flow. Without a device code, a flow
    alone grades the same way (> 6 L/min → 3, > 0 → 2).
    """
    dev = _arr(oxygen_device)
    flow = _arr(oxygen_flow)
    dev, flow = np.broadcast_arrays(dev, flow)
    return _hypoxia_grade(dev, flow)


def _hypoxia_grade(dev: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """:func:`hypoxia_grade` of aligned float arrays (no conversion or broadcasting)."""
    with np.errstate(invalid="ignore"):
        high_flow = np.round(flow, 3) > LOW_FLOW_MAX_L_PER_MIN
        any_flow = flow > 0
        grade = np.zeros(dev.shape, dtype=np.int8)
        nc = dev == OxygenDevice.NASAL_CANNULA
        grade[nc] = np.where(high_flow[nc], 3, 2)
        grade[dev == OxygenDevice.BLOW_BY] = 2
        grade[(dev == OxygenDevice.HIGH_FLOW_NASAL_CANNULA) | (dev == OxygenDevice.FACEMASK)] = 3
        grade[
            (dev == OxygenDevice.NONINVASIVE_POSITIVE_PRESSURE)
            | (dev == OxygenDevice.MECHANICAL_VENTILATION)
        ] = 4
        no_dev = np.isnan(dev)
        grade[no_dev & any_flow] = 2
        grade[no_dev & high_flow] = 3
    return grade


def astct_grade(
    temperature_c: ArrayLike,
    hypotension: ArrayLike = None,
    vasopressors: ArrayLike = None,
    oxygen_device: ArrayLike = None,
    oxygen_flow: ArrayLike = None,
    fever_exempt: ArrayLike = None,
    vasopressin: ArrayLike = None,
) -> np.ndarray:
    """ASTCT 2019 CRS grade (0–4), element-wise over aligned arrays.

    ``temperature_c`` is the highest temperature in the fever window (NaN = none recorded);
    ``fever_exempt`` is true once tocilizumab or corticosteroids were given, when fever is no
    longer required. Without fever (and not exempt) the grade is 0: hypotension or hypoxia alone
    are not CRS. With fever the grade is at least 1; otherwise the worse of hypotension and
    hypoxia.
    """
    temp = _arr(temperature_c)
    n = temp.shape[0]
    hypo = hypotension_grade(_arr(hypotension, n), _arr(vasopressors, n), _arr(vasopressin, n))
    oxy = hypoxia_grade(_arr(oxygen_device, n), _arr(oxygen_flow, n))
    fever = is_fever(temp)
    exempt = np.zeros(n, dtype=bool) if fever_exempt is None else _arr(fever_exempt, n) > 0
    organ = np.maximum(hypo, oxy)
    grade = np.where(fever, np.maximum(organ, 1), np.where(exempt, organ, 0))
    return np.broadcast_to(grade, np.broadcast_shapes(temp.shape, hypo.shape)).astype(np.int8)


def _asof(
    comp: np.ndarray,
    codes: np.ndarray,
    hours: np.ndarray,
    query: np.ndarray,
    q_code: np.ndarray,
    q_hours: np.ndarray,
    tolerance: float,
) -> np.ndarray:
    """Index of the last row at or before each query within ``tolerance`` hours (-1 = none).

    ``comp`` / ``query`` are exact integer (patient, time-rank) keys sorted ascending; the
    search is NumPy's ``searchsorted`` (``pandas.merge_asof`` does the same with more overhead
    per call, which dominated the one-patient serving path).
    """
    if len(comp) == 0:
        return np.full(len(query), -1, dtype=np.int64)
    idx = np.searchsorted(comp, query, side="right") - 1
    safe = np.clip(idx, 0, None)
    ok = (idx >= 0) & (codes[safe] == q_code) & (q_hours - hours[safe] <= tolerance)
    return np.where(ok, idx, -1)


def _derive(
    p: np.ndarray,
    a: np.ndarray,
    t: np.ndarray,
    v: np.ndarray,
    n: int,
    drug_p: np.ndarray,
    drug_t: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`derive_grades` on arrays: support rows (code ``p`` < ``n``, analyte code ``a``,
    time, value) and timed fever-exempting drug doses → (code, hours, grade) per evaluation,
    sorted by code and time."""
    if len(p) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0)
    times, rank = np.unique(t, return_inverse=True)
    n_ranks = len(times)
    comp = p.astype(np.int64) * n_ranks + rank.reshape(-1)
    order = np.argsort(comp, kind="stable")
    comp, codes, hours = comp[order], p[order], t[order]
    analyte, value = a[order], v[order]
    query = np.unique(comp)  # one evaluation per (patient, time) with a support row
    q_code, q_hours = query // n_ranks, times[query % n_ranks]
    # the state of each kind at each evaluation (NaN = none in force); a kind without rows is
    # left out: all-NaN inputs grade 0 in :func:`astct_grade`, so skipping them changes nothing
    # and saves most of the work for one patient (usually temperature rows only)
    kinds = set(analyte.tolist() if len(analyte) <= 256 else np.unique(analyte).tolist())
    state: dict[str, np.ndarray | None] = dict.fromkeys((*SUPPORT_ANALYTES[1:], "fever"))
    for name, code in _SUPPORT_CODE.items():
        if code not in kinds:
            continue
        mask = analyte == code
        if name == "temperature":
            name, mask, tol = "fever", mask & fever_values(value), FEVER_WINDOW_H
        else:
            tol = SUPPORT_VALID_H
        sel = np.flatnonzero(mask)
        idx = _asof(comp[sel], codes[sel], hours[sel], query, q_code, q_hours, tol)
        found = value[sel][idx[idx >= 0]]
        out = np.full(len(query), np.nan)
        out[idx >= 0] = found
        state[name] = out
    first_drug = np.full(n, np.inf)
    np.minimum.at(first_drug, drug_p, drug_t)
    # astct_grade on the aligned 1-D states, without its conversions and broadcasting
    size = len(query)
    organ = np.zeros(size, dtype=np.int8)
    nan = np.full(size, np.nan)
    hypo, vaso, vp = state["hypotension"], state["vasopressors"], state["vasopressin"]
    if hypo is not None or vaso is not None or vp is not None:
        organ = np.maximum(
            organ,
            _hypotension_grade(nan if hypo is None else hypo, nan if vaso is None else vaso, vp),
        )
    dev, flow = state["oxygen_device"], state["oxygen_flow"]
    if dev is not None or flow is not None:
        organ = np.maximum(
            organ, _hypoxia_grade(nan if dev is None else dev, nan if flow is None else flow)
        )
    fever = fever_values(nan if state["fever"] is None else state["fever"])
    exempt = first_drug[q_code] <= q_hours
    grade = np.where(fever, np.maximum(organ, 1), np.where(exempt, organ, 0)).astype(float)
    return _with_expiry(q_code, q_hours, grade)


def _with_expiry(
    code: np.ndarray, hours: np.ndarray, grade: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Derived evaluations (sorted by code and time) with an expiry step (grade NaN) at
    ``t + SUPPORT_VALID_H`` after every evaluation not followed by another within that time."""
    if len(code) == 0:
        return code, hours, grade
    nxt_same = np.r_[code[1:] == code[:-1], False]
    gap = np.r_[hours[1:] - hours[:-1], np.inf]
    expires = ~nxt_same | (gap > SUPPORT_VALID_H)
    if not expires.any():
        return code, hours, grade
    e_idx = np.flatnonzero(expires)
    pos = e_idx + 1  # each expiry goes right after its evaluation
    code = np.insert(code, pos, code[e_idx])
    hours = np.insert(hours, pos, hours[e_idx] + SUPPORT_VALID_H)
    grade = np.insert(grade, pos, np.nan)
    return code, hours, grade


def _event_codes(events: pd.DataFrame) -> np.ndarray:
    return vocabulary_codes(events["event"], EVENT_CODE)


def derive_grades(
    measurements: pd.DataFrame, events: pd.DataFrame, key: str = "patient_id"
) -> pd.DataFrame:
    """ASTCT grade at every time a support row was recorded (``key``, hours, grade); the expiry
    steps of :func:`grade_course` are not evaluations and are not listed here.

    Causal by construction: the state at ``t`` uses only rows at or before ``t`` (see module
    docstring for the fever window and how long a support row holds). Fever is not required
    from the first timed tocilizumab or corticosteroid dose on; drugs with unknown time are
    ignored here (an unknown time can define an outcome, never a state).
    """
    m = measurements[measurements["analyte"].isin(SUPPORT_ANALYTES)]
    if m.empty:
        return pd.DataFrame(
            {
                key: pd.Series([], dtype=measurements[key].dtype),
                "hours_from_infusion": pd.Series([], dtype=float),
                "grade": pd.Series([], dtype=float),
            }
        )
    codes, keys = pd.factorize(m[key])
    drugs = events[
        _IS_FEVER_EXEMPT[_event_codes(events)] & events["hours_from_infusion"].notna().to_numpy()
    ]
    d_code = pd.Index(keys).get_indexer(drugs[key])
    ok = d_code >= 0
    q_code, q_hours, grade = _derive(
        codes.astype(np.int64),
        vocabulary_codes(m["analyte"], ANALYTE_CODE),
        m["hours_from_infusion"].to_numpy(dtype=float),
        m["value"].to_numpy(dtype=float),
        len(keys),
        d_code[ok],
        drugs["hours_from_infusion"].to_numpy(dtype=float)[ok],
    )
    at_rows = ~np.isnan(grade)  # evaluations only: the expiry steps belong to the course
    return pd.DataFrame(
        {
            key: keys.take(q_code[at_rows]),
            "hours_from_infusion": q_hours[at_rows],
            "grade": grade[at_rows],
        }
    )


# course sources, per patient code in :class:`Course`
NO_COURSE, RECORDED, DERIVED, MAX_GRADE_ONSET = 0, 1, 2, 3
SOURCE_NAMES: tuple[str, ...] = ("none", "recorded", "derived", "max_grade_onset")


@dataclass(frozen=True)
class Course:
    """The grade course of patients coded 0 … n-1, as arrays (see :class:`GradeCourse`).

    Steps (``code``, ``hours``, ``grade``) sorted by code and time; ``source`` per code
    (:data:`SOURCE_NAMES` index); the summary evidence (``s_code``, ``s_grade``, ``s_hours``)
    in event order.
    """

    n: int
    code: np.ndarray
    hours: np.ndarray
    grade: np.ndarray
    source: np.ndarray
    s_code: np.ndarray
    s_grade: np.ndarray
    s_hours: np.ndarray


@dataclass(frozen=True)
class Derived:
    """ASTCT grades derived from the support rows of every patient (code, hours, grade), sorted
    by code and time: what :func:`derive_grades` gives each patient, computed once."""

    code: np.ndarray
    hours: np.ndarray
    grade: np.ndarray

    def cut(self, landmark: float | np.ndarray) -> Derived:
        """The grades at or before the landmark (one number, or one per patient code)."""
        limit = landmark if np.ndim(landmark) == 0 else np.asarray(landmark)[self.code]
        keep = known_at(self.hours, limit)
        return Derived(self.code[keep], self.hours[keep], self.grade[keep])

    def stack(self, landmarks: tuple[float, ...], n: int) -> Derived:
        """The grades of :meth:`features.records.Records.stack` (patient ``p`` at landmark
        ``i`` is ``i * n + p``)."""
        li, j = np.nonzero(known_at(self.hours[None, :], np.asarray(landmarks)[:, None]))
        return Derived(li * n + self.code[j], self.hours[j], self.grade[j])


def derive_records(records: Records) -> Derived:
    """The derived grades of every patient of ``records`` that has support rows.

    Derivation is causal (a grade at ``t`` reads rows at or before ``t``; fever exemption from
    the first drug dose at or before ``t``), so the grades of the records cut at a landmark are
    exactly these grades timed at or before it: one derivation serves every landmark. A
    patient's derived grades are used only while no timed course event is known (the
    recorded course takes over from the first one), so rows from then on are not derived.
    """
    ee, et = records.e_e, records.e_t
    course = _IS_COURSE[ee] & ~np.isnan(et)
    recorded_from = np.full(records.n, np.inf)
    np.minimum.at(recorded_from, records.e_p[course], et[course])
    sup = _IS_SUPPORT[records.m_a] & (records.m_t < recorded_from[records.m_p])
    drugs = _IS_FEVER_EXEMPT[ee] & ~np.isnan(et)
    return Derived(
        *_derive(
            records.m_p[sup],
            records.m_a[sup],
            records.m_t[sup],
            records.m_v[sup],
            records.n,
            records.e_p[drugs],
            records.e_t[drugs],
        )
    )


_DERIVED: weakref.WeakKeyDictionary[Records, Derived] = weakref.WeakKeyDictionary()


def derived_of(records: Records) -> Derived:
    """:func:`derive_records` of ``records``, computed once per records object and shared by
    every landmark cut from them (cached here, by identity, while the records live)."""
    derived = _DERIVED.get(records)
    if derived is None:
        derived = _DERIVED[records] = derive_records(records)
    return derived


def course_of_records(
    records: Records,
    derived: Derived | None = None,
    limit: float | np.ndarray | None = None,
) -> Course:
    """Grade course of every patient of ``records`` (the rules of :func:`grade_course`).

    ``derived``: the derived grades of these records' patients, cut as the records were
    (:func:`derive_records` of the uncut records, then :meth:`Derived.cut` / ``stack``); else
    the grades are derived from ``records`` themselves, and ``limit`` (the landmark the records
    were cut at: one number or one per patient) drops the expiry steps after it, which are not
    known at the landmark. Both give the same course.
    """
    n = records.n
    ee, et, eg, ep = records.e_e, records.e_t, records.e_g, records.e_p
    timed = ~np.isnan(et)
    in_course = _IS_COURSE[ee] & timed
    rec_grade = np.where(ee[in_course] == _RESOLVED, 0.0, eg[in_course])
    recorded = np.zeros(n, dtype=bool)
    recorded[ep[in_course]] = True
    if derived is None:
        sup = _IS_SUPPORT[records.m_a] & ~recorded[records.m_p]
        drugs = _IS_FEVER_EXEMPT[ee] & timed & ~recorded[ep]
        q_code, q_hours, q_grade = _derive(
            records.m_p[sup],
            records.m_a[sup],
            records.m_t[sup],
            records.m_v[sup],
            n,
            ep[drugs],
            et[drugs],
        )
        if limit is not None:
            known = known_at(q_hours, limit if np.ndim(limit) == 0 else np.asarray(limit)[q_code])
            q_code, q_hours, q_grade = q_code[known], q_hours[known], q_grade[known]
    else:
        keep = ~recorded[derived.code]
        q_code, q_hours, q_grade = derived.code[keep], derived.hours[keep], derived.grade[keep]
    is_derived = np.zeros(n, dtype=bool)
    is_derived[q_code] = True
    # Onset from a timed whole-course maximum ≥1, for patients with nothing better: CRS is known
    # to be present from that time on at grade ≥1; the maximum itself is not known then.
    with np.errstate(invalid="ignore"):
        onset_only = (ee == _MAX_GRADE) & timed & (eg >= 1) & ~(recorded | is_derived)[ep]
    all_codes = np.concatenate([ep[in_course], q_code, ep[onset_only]])
    all_hours = np.concatenate([et[in_course], q_hours, et[onset_only]])
    all_grade = np.concatenate([rec_grade, q_grade, np.ones(int(onset_only.sum()))])
    # a recorded event without a grade is dropped; a derived NaN is an expiry (grade unknown)
    ok = np.r_[~np.isnan(rec_grade), np.ones(len(q_code) + int(onset_only.sum()), dtype=bool)]
    all_codes, all_hours, all_grade = all_codes[ok], all_hours[ok], all_grade[ok]
    order = np.lexsort((all_grade, all_hours, all_codes))  # at one time the highest grade last
    c, h, g = all_codes[order], all_hours[order], all_grade[order]
    last = np.concatenate(((c[1:] != c[:-1]) | (h[1:] != h[:-1]), [True]))[: len(c)]
    source = np.zeros(n, dtype=np.int8)
    source[ep[onset_only]] = MAX_GRADE_ONSET
    source[is_derived] = DERIVED
    source[recorded] = RECORDED
    summ = (ee == _MAX_GRADE) | (_IS_GRADED_COURSE[ee] & ~timed)
    return Course(n, c[last], h[last], g[last], source, ep[summ], eg[summ], et[summ])


@dataclass(frozen=True)
class GradeCourse:
    """Per-patient ASTCT grade course and the summary evidence kept out of it.

    ``steps``: ``key``, ``hours_from_infusion``, ``grade`` — the grade in force from that time
    on, sorted by key and time (at one time the highest grade wins). ``source``: per key,
    ``"recorded"``, ``"derived"`` (ASTCT 2019 from support rows) or ``"none"``. ``summary``:
    ``key``, ``grade``, ``hours_from_infusion`` of ``crs_max_grade`` events and of graded events
    with unknown time — whole-course facts whose value is not known at their time stamp.
    """

    steps: pd.DataFrame
    source: pd.Series
    summary: pd.DataFrame


def as_frames(course: Course, keys: np.ndarray | pd.Index, key: str) -> GradeCourse:
    """The :class:`GradeCourse` frames of an array course (``keys[code]`` = the key value)."""
    keys = np.asarray(keys)
    has = np.flatnonzero(course.source != NO_COURSE)
    names = np.asarray(SOURCE_NAMES, dtype=object)
    return GradeCourse(
        steps=pd.DataFrame(
            {key: keys[course.code], "hours_from_infusion": course.hours, "grade": course.grade}
        ),
        source=pd.Series(
            names[course.source[has]], index=pd.Index(keys[has], name=key), dtype=object
        ),
        summary=pd.DataFrame(
            {
                key: keys[course.s_code],
                "grade": course.s_grade,
                "hours_from_infusion": course.s_hours,
            }
        ),
    )


def grade_course(
    measurements: pd.DataFrame, events: pd.DataFrame, key: str = "patient_id"
) -> GradeCourse:
    """Build the grade course of every patient appearing in ``measurements`` or ``events``.

    A patient with any timed ``crs_onset`` / ``crs_grade`` / ``crs_resolved`` event uses the
    recorded course (``crs_resolved`` = grade 0); otherwise the course is derived from support
    rows (:func:`derive_grades`) when the patient has any; otherwise a timed ``crs_max_grade``
    ≥ 1 gives grade 1 from onset (``source`` ``"max_grade_onset"``); otherwise it is empty.
    """
    m_key, e_key = measurements[key].to_numpy(), events[key].to_numpy()
    codes, keys = pd.factorize(np.concatenate([m_key, e_key]), sort=True)
    codes = codes.astype(np.int64)
    records = Records(
        len(keys),
        codes[: len(m_key)],
        vocabulary_codes(measurements["analyte"], ANALYTE_CODE),
        measurements["hours_from_infusion"].to_numpy(dtype=float),
        measurements["value"].to_numpy(dtype=float),
        codes[len(m_key) :],
        _event_codes(events),
        events["hours_from_infusion"].to_numpy(dtype=float),
        pd.to_numeric(events["grade"]).to_numpy(dtype=float, na_value=np.nan),
        np.full(len(e_key), -1, dtype=np.int64),
    )
    return as_frames(course_of_records(records), keys, key)
