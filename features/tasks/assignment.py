"""The result of applying a task: per-patient landmark, eligibility, reason and label."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.cohort import Cohort
from features.grading import (
    Course,
    GradeCourse,
    as_frames,
)
from features.landmark import PATIENT_CODE, cut, with_codes
from features.records import Records


@dataclass(frozen=True)
class Assignment:
    """Per patient (aligned with ``cohort.patients`` rows): landmark, eligibility, label.

    ``y`` is 1/0, or NaN where not eligible or not required; ``reason`` is the exclusion reason
    ("" when eligible); ``label_unknown`` marks exclusions for an outcome that cannot be decided
    (training only; the others are decided at the landmark); ``clauses`` names, for a positive
    ``toci_refractory`` label, the clause(s) that made it (``"second_line+worsening"``; "" else).
    ``notes`` state the derivations used (for the summary). ``records`` and ``grades`` are the
    cohort cut at the landmark and its grade course as arrays (what features are computed
    from); ``at_landmark`` and ``course`` give the same as frames.
    """

    landmark: np.ndarray
    eligible: np.ndarray
    y: np.ndarray
    reason: np.ndarray
    notes: tuple[str, ...]
    records: Records  # the cohort's records cut at the landmark
    grades: Course  # grade course of the cut records
    cohort: Cohort | None  # the (prepared) cohort assigned; None when given records only
    label_unknown: np.ndarray  # bool: excluded because the outcome cannot be decided
    clauses: np.ndarray  # object: clauses of a positive refractory label ("" otherwise)

    @property
    def course(self) -> GradeCourse:
        """Grade course of the cohort cut at the landmark (key ``_p`` = patient row)."""
        return as_frames(self.grades, np.arange(self.grades.n, dtype=np.int64), PATIENT_CODE)

    @property
    def at_landmark(self) -> Cohort:
        """The cohort cut at the landmark (frames, with the patient code column ``_p``)."""
        if self.cohort is None:
            raise ValueError("assigned from records: the cut cohort is in ``records``")
        limit = self.landmark
        ids = self.cohort.patients["patient_id"].astype(str).to_numpy()
        return cut(with_codes(self.cohort), pd.Series(limit, index=ids))

    def summary(self) -> dict[str, object]:
        """:func:`exclusion_summary` of this assignment."""
        return exclusion_summary(self)


def exclusion_summary(a: Assignment) -> dict[str, object]:
    """Aggregate counts of an assignment (no identifiers): eligible, positives, exclusions by
    reason — all, decided at the landmark, and for an unknown outcome — and, for positive
    refractory labels, how many each clause made (a patient can meet several) and each
    combination."""
    reason = a.reason
    excluded = reason != ""

    def counts(mask: np.ndarray) -> dict[str, int]:
        texts, n = np.unique(reason[mask].astype(str), return_counts=True)
        pairs = sorted(zip(texts.tolist(), n.tolist(), strict=True), key=lambda kv: -kv[1])
        return {t: int(c) for t, c in pairs}

    y = a.y[a.eligible]
    labelled = not np.isnan(y).all() if len(y) else False
    positive = a.eligible & (a.y == 1)
    combos = counts_of(a.clauses[positive])
    clauses: dict[str, int] = {}
    for combo, c in combos.items():
        for part in combo.split("+"):
            clauses[part] = clauses.get(part, 0) + c
    return {
        "eligible": int(a.eligible.sum()),
        "positives": int(np.nansum(y)) if labelled else None,
        "excluded": int(excluded.sum()),
        "exclusions": counts(excluded),
        "excluded_at_landmark": counts(excluded & ~a.label_unknown),
        "excluded_outcome_unknown": counts(excluded & a.label_unknown),
        "positive_clauses": clauses,
        "positive_clause_combinations": combos,
    }


def counts_of(values: np.ndarray) -> dict[str, int]:
    """Count of every non-empty text in ``values``, most frequent first."""
    texts, n = np.unique(values[values != ""].astype(str), return_counts=True)
    pairs = sorted(zip(texts.tolist(), n.tolist(), strict=True), key=lambda kv: -kv[1])
    return {t: int(c) for t, c in pairs}


def reasons(n: int, rules: list[tuple[np.ndarray, str]]) -> np.ndarray:
    """First matching reason per patient ("" = eligible); rules are applied in order."""
    reason = np.full(n, "", dtype=object)
    open_ = np.ones(n, dtype=bool)  # no reason yet (every rule's text is non-empty)
    for mask, text in rules:
        hit = open_ & mask
        reason[hit] = text
        open_ &= ~hit
    return reason


def label_unknown_mask(reason: np.ndarray, landmark_texts: set[str]) -> np.ndarray:
    """True where the exclusion reason is not one of the landmark rules."""
    out = reason != ""
    for text in landmark_texts:
        out &= reason != text
    return out
