"""Scoring many patients at once: the single-patient steps vectorised over the batch.

The request's patients become the cohort tables once (``serving.conversion.to_frames``), are
validated once by the contract's code, and each severe-CRS landmark and the toci task get one
assignment, one feature matrix and one probability call over their patients; the results are
built by ``serving.results.task_results`` exactly as for a single request (statuses, warnings,
intervals, sentences; explanations for patients asking for them). Results are plain dicts in
the ``BatchItem`` shape encoded by msgspec (10⁴ pydantic objects cost more than the scoring
itself); the audit log's input digests come from the validated columns (``serving.digest``).

``reqs`` may be plain dicts (``serving.schemas.batch_records``), request models or the structs of
``serving.batch_json``: every per-patient field is read with one C-level getter over the batch.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np
import pandas as pd
from pydantic_core import to_json

from features.build import feature_matrix, patient_features
from features.errors import CrsRiskError
from features.grading import course_of_records, derived_of
from features.tasks import assign
from serving.audit import OUTPUT_KEYS
from serving.conversion import Frames, Request, column, request_index, to_frames, validate_frames_of
from serving.digest import input_digests
from serving.loading import Snapshot
from serving.results import empty, task_of, task_results
from serving.schemas import NOTICE
from serving.scoring import (
    SEVERE,
    TOCI,
    _n_features,
    after_reason,
    reached_reasons,
    severe_hours,
    toci_landmarks,
)


@dataclass
class BatchScores:
    """A scored batch: the response's JSON pieces and, per patient in request order, what the
    audit log keeps.

    ``parts``: the ``BatchResponse`` document after its head (which holds the request id) as
    UTF-8 pieces in order — each ``BatchItem``'s pieces with commas between, then the tail —
    joined once by :meth:`body`; ``outputs`` / ``versions``: what the audit log keeps
    (the task results' :data:`serving.audit.OUTPUT_KEYS`, the model versions); ``digests``: the
    audit input digests (``serving.digest``).
    """

    refs: list[str | None]
    parts: list[bytes]
    outputs: list[str]
    versions: list[str]
    digests: list[str]

    def body(self, request_id: str) -> bytes:
        """The ``BatchResponse`` document, in one join of its pieces (no copy per item)."""
        head = f'{{"request_id":{_text(request_id)},"n":{len(self.refs)},"items":['
        return b"".join([head.encode(), *self.parts])


_text = json.encoder.encode_basestring_ascii  # C: a JSON string


def _json(value: Any, include: Any = None) -> str:
    return to_json(value, include=include).decode()


def landmarks(
    frames: Frames, as_of: np.ndarray, asked: Sequence[str | None], served: list[tuple[str, float]]
) -> tuple[list[str], np.ndarray]:
    """``serving.scoring.choose_landmark(r)[0]`` of every patient, vectorised (the latest
    served severe-CRS landmark at or before ``as_of_hours``, default the latest recorded time,
    or the landmark asked for), and each patient's latest data time (hours)."""
    n = len(asked)
    h = np.zeros(n)
    np.maximum.at(
        h, frames.origin["measurements"][0], frames.tables["measurements"]["hours_from_infusion"]
    )
    e_hours = frames.tables["events"]["hours_from_infusion"]
    timed = ~np.isnan(e_hours)
    np.maximum.at(h, frames.origin["events"][0][timed], e_hours[timed])
    until = h.copy()
    h = np.where(np.isnan(as_of), h, as_of)
    names = [name for name, _ in served]
    hours = np.array([hours for _, hours in served])
    supported = hours[None, :] <= (h + 1e-9)[:, None]
    last = len(names) - 1 - np.argmax(supported[:, ::-1], axis=1)
    ok: list[bool] = np.any(supported, axis=1).tolist()
    latest = [names[j] if k else names[0] for j, k in zip(last.tolist(), ok, strict=True)]
    chosen = [a if a is not None else lm for a, lm in zip(asked, latest, strict=True)]
    return chosen, until


def _ids_as_codes(frames: Frames) -> None:
    """Give the tables' patient keys as categoricals over the patients' keys: the validator
    then reads each row's patient as a code instead of hashing 10⁵ key strings (same keys,
    same validation)."""
    keys = frames.tables["patients"]["patient_id"]
    categories = pd.Index(keys, dtype=object)
    for table in ("patients", "measurements", "events"):
        patient = frames.origin[table][0]
        frames.tables[table]["patient_id"] = pd.Categorical.from_codes(
            patient, categories=categories, validate=False
        )


FIELDS = ("patient_ref", "landmark", "as_of_hours", "explain", "top_k")
"""The per-patient request fields a batch needs besides the cohort tables."""


@dataclass
class BatchInput:
    """A batch as the cohort tables (``serving.conversion.Frames``) and, per patient, the request
    fields of :data:`FIELDS` — from request records (:func:`batch_input`) or straight from CSV
    columns (``serving.batch_csv``)."""

    frames: Frames
    fields: dict[str, list[Any]]


def batch_input(reqs: Sequence[Request]) -> BatchInput:
    """The requests (dicts, models or structs) as a :class:`BatchInput`."""
    return BatchInput(to_frames(reqs), {name: column(reqs, name) for name in FIELDS})


def score_batch(snapshot: Snapshot, batch: BatchInput | Sequence[Request]) -> BatchScores:
    """Vectorised scoring of many patients (raises ``RequestProblems`` for contract problems):
    per (task, landmark) one assignment, one feature matrix and one probability call, then
    ``serving.results.task_results`` — the single route's statuses, warnings and wording."""
    if not isinstance(batch, BatchInput):
        batch = batch_input(batch)
    frames, fields = batch.frames, batch.fields
    n = len(fields["patient_ref"])
    _ids_as_codes(frames)
    valid = validate_frames_of(frames, batch=True)
    as_of = np.array([np.nan if v is None else v for v in fields["as_of_hours"]], dtype=np.float64)
    asked = fields["landmark"]
    served = severe_hours(snapshot)
    chosen, until = landmarks(frames, as_of, asked, served)
    explain = fields["explain"]
    top_k = fields["top_k"]
    code_of = np.empty(n, dtype=np.int64)  # request index → patient code
    code_of[request_index(valid)] = np.arange(n)
    baseline = patient_features(valid.patients)
    # the uncut grade course, once: the reached check and the toci landmarks share it
    course = course_of_records(valid.records, derived_of(valid.records))
    reached = reached_reasons(valid.records, course)
    chosen_arr = np.array(chosen, dtype=object)
    needed = sorted(set(chosen), key=lambda x: float(x[:-1]))
    severe_task = task_of(SEVERE, [h for _, h in served] + [float(x[:-1]) for x in needed])
    plan = [(SEVERE, lm, np.flatnonzero(chosen_arr == lm)) for lm in needed]
    plan += [(TOCI, lm, np.arange(n)) for lm in toci_landmarks(snapshot)]
    slots = [SEVERE, *(f"{TOCI}@{lm}" for lm in toci_landmarks(snapshot))]
    results: dict[str, list[dict[str, Any] | None]] = {k: [None] * n for k in slots}
    for task, lm, members in plan:
        slot = SEVERE if task == SEVERE else f"{TOCI}@{lm}"
        model = snapshot.get(task, lm)
        m_list = members.tolist()
        if model is None:
            r = empty(task, lm, None, "no_model", f"no champion registered for {lm}")
            for i in m_list:
                results[slot][i] = r
            continue
        try:
            a = assign(
                valid.records,
                severe_task if task == SEVERE else task,
                lm,
                require_label=False,
                full_course=None if task == SEVERE else course,
            )
        except CrsRiskError as exc:  # a landmark this code version cannot place
            r = empty(task, lm, model, "no_model", str(exc))
            for i in m_list:
                results[slot][i] = r
            continue
        codes = code_of[members]
        eligible = a.eligible[codes].copy()
        reasons = [str(x) for x in a.reason[codes].tolist()]
        if task == SEVERE:
            later = reached[codes]
            for k in np.flatnonzero(eligible & (later != "")).tolist():
                eligible[k] = False
                reasons[k] = after_reason(str(later[k]), lm)
        features = np.full((len(members), _n_features()), np.nan)
        if eligible.any():
            by_code = np.argsort(codes[eligible], kind="stable")
            rows = codes[eligible][by_code]
            features[np.flatnonzero(eligible)[by_code]] = feature_matrix(a, baseline, rows)
        built = task_results(
            model,
            task,
            lm,
            eligible,
            reasons,
            features,
            until[members],
            [explain[i] for i in m_list],
            [top_k[i] for i in m_list],
        )
        for i, r in zip(m_list, built, strict=True):
            results[slot][i] = r
    refs = fields["patient_ref"]
    per_patient = [[results[k][i] for k in slots] for i in range(n)]
    # Each result dict is encoded once: results without a probability are shared dicts
    # (``serving.results.empty``: most patients' toci results), so most of the 3·n results are
    # a handful of objects. Keyed by id(): every result stays referenced until the end.
    encode = msgspec.json.encode
    full: dict[int, bytes] = {}
    kept: dict[int, str] = {}

    def as_json(r: dict[str, Any] | None) -> bytes:
        text = full.get(id(r))
        if text is None:
            text = full[id(r)] = encode(r)
        return text

    def as_output(r: dict[str, Any] | None) -> str:  # what the audit log keeps of a result
        text = kept.get(id(r))
        if text is None:
            assert r is not None, "every slot of every patient holds a result"
            text = kept[id(r)] = encode({k: r[k] for k in OUTPUT_KEYS}).decode()
        return text

    # UTF-8 throughout: the results' texts hold non-ASCII (≥), so a str of them would be
    # UCS-2 and transcoded again at the end. One flat list of pieces, joined once by
    # ``BatchScores.body``: no bytes object per item, no second copy of the document.
    parts: list[bytes] = []
    add = parts.append
    for i, (ref, lm, rs) in enumerate(zip(refs, chosen, per_patient, strict=True)):
        add(
            f'{"," if i else ""}{{"index":{i},"patient_ref":'
            f'{"null" if ref is None else _text(ref)},"landmark":"{lm}","results":['.encode()
        )
        for k, result in enumerate(rs):
            if k:
                add(b",")
            add(as_json(result))
        add(b'],"errors":[]}')
    add(f'],"notice":{_text(NOTICE)}}}'.encode())
    outputs = ["[" + ",".join([as_output(r) for r in rs]) + "]" for rs in per_patient]
    cache: dict[tuple[Any, ...], str] = {}
    versions = []
    for rs in per_patient:
        key = tuple((r["model"], r["version"]) for r in rs if r and r.get("model"))
        v = cache.get(key)
        if v is None:
            v = cache[key] = json.dumps(dict(key), sort_keys=True)
        versions.append(v)
    order = request_index(valid)
    digest_of = input_digests(
        valid.records, valid.patients, as_of[order], [asked[i] for i in order]
    )
    digests = [digest_of[c] for c in code_of.tolist()]
    return BatchScores(refs, parts, outputs, versions, digests)
