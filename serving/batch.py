"""Scoring many patients at once: the single-patient steps vectorised over the batch.

The request's patients become the cohort tables once (``serving.scoring.to_frames``), are
validated once by the contract's code, and each severe-CRS landmark and the toci task get one
assignment, one feature matrix and one ``predict_proba`` over their patients. Patients asking
for explanations go through ``serving.scoring.scored`` like single requests. Results are plain
dicts in the ``BatchItem`` shape (10⁴ pydantic objects cost more than the scoring itself); the
audit log's input digests come from the validated columns (``serving.digest``).

``reqs`` may be plain dicts (``serving.schemas.batch_records``), request models or the structs of
``serving.fastjson``: every per-patient field is read with one C-level getter over the batch.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pydantic_core import to_json

from serving.audit import OUTPUT_KEYS
from serving.digest import input_digests
from serving.explaining import predict
from serving.schemas import NOTICE
from serving.scoring import (
    SEVERE,
    TOCI,
    Frames,
    Request,
    column,
    feature_index,
    not_scored,
    request_index,
    scored,
    severe_hours,
    to_frames,
    validate_frames_of,
)
from serving.store import LoadedModel, Snapshot


@dataclass
class BatchScores:
    """A scored batch as JSON texts, one per patient in request order.

    ``items``: the response's ``BatchItem`` objects; ``outputs`` / ``versions``: what the audit
    log keeps (the task results' :data:`serving.audit.OUTPUT_KEYS`, the model versions);
    ``digests``: the audit input digests (``serving.digest``).
    """

    refs: list[str | None]
    items: list[str]
    outputs: list[str]
    versions: list[str]
    digests: list[str]

    def body(self, request_id: str) -> bytes:
        """The ``BatchResponse`` document."""
        head = f'{{"request_id":{_text(request_id)},"n":{len(self.items)},"items":['
        return (head + ",".join(self.items) + f'],"notice":{_text(NOTICE)}}}').encode()


_text = json.encoder.encode_basestring_ascii  # type: ignore[attr-defined]  # C: a JSON string
_PLACEHOLDER = "@@probability@@"


def _json(value: Any, include: Any = None) -> str:
    return to_json(value, include=include).decode()


class _Rendered:
    """A task result's JSON texts (response, audit) for one model, built once per band and
    reason, with the probability the only part written per patient.

    A 10⁴-patient batch has ≤ 3 bands and a handful of reasons per model: encoding 2×10⁴ nested
    result dicts with a JSON library costs more than scoring them, so each distinct text is
    encoded once (by pydantic's serialiser) and split at the probability.
    """

    def __init__(self, task: str, landmark: str, model: LoadedModel | None) -> None:
        self.task, self.landmark, self.model = task, landmark, model
        self._scored: list[tuple[str, str, str, str]] | None = None
        self._missing: dict[str, tuple[str, str]] = {}

    def not_scored(self, reason: str) -> tuple[str, str]:
        texts = self._missing.get(reason)
        if texts is None:
            d = _not_scored_dict(self.task, self.landmark, reason, self.model)
            texts = self._missing[reason] = (_json(d), _json(d, set(OUTPUT_KEYS)))
        return texts

    def scored(self, bands: np.ndarray, p: list[float]) -> list[tuple[str, str]]:
        """(response, audit) texts of scored patients (band index, probability)."""
        assert self.model is not None
        if self._scored is None:
            self._scored = []
            for name, evidence in _band_dicts(self.model):
                row = _scored_row(self.model) | {
                    "probability": _PLACEHOLDER,
                    "band": name,
                    "uncertainty": evidence,
                }
                r1, r2 = _json(row).split(f'"{_PLACEHOLDER}"')
                a1, a2 = _json(row, set(OUTPUT_KEYS)).split(f'"{_PLACEHOLDER}"')
                self._scored.append((r1, r2, a1, a2))
        t = self._scored
        out = []
        for b, prob in zip(bands.tolist(), p, strict=True):
            r1, r2, a1, a2 = t[b]
            x = repr(prob)  # shortest round-trip text; finite, so valid JSON
            out.append((r1 + x + r2, a1 + x + a2))
        return out


def _scored_row(model: LoadedModel) -> dict[str, Any]:
    return {
        "task": model.task,
        "landmark": model.landmark,
        "eligible": True,
        "reason": None,
        "probability": None,
        "band": None,
        "thresholds": list(model.thresholds),
        "uncertainty": None,
        "base_value": None,
        "log_odds": None,
        "other_contribution": None,
        "contributions": [],
        "warnings": [],
        "model": model.name,
        "version": model.version,
    }


def landmarks(frames: Frames, as_of: np.ndarray, asked: Sequence[str | None]) -> list[str]:
    """``serving.scoring.choose_landmark(r)[0]`` of every patient, vectorised: the latest
    severe-CRS landmark at or before ``as_of_hours`` (default: the latest recorded time, 0 when
    none is after infusion), or the landmark asked for."""
    n = len(asked)
    h = np.zeros(n)
    np.maximum.at(
        h, frames.origin["measurements"][0], frames.tables["measurements"]["hours_from_infusion"]
    )
    e_hours = frames.tables["events"]["hours_from_infusion"]
    timed = ~np.isnan(e_hours)
    np.maximum.at(h, frames.origin["events"][0][timed], e_hours[timed])
    h = np.where(np.isnan(as_of), h, as_of)
    names = [name for name, _ in severe_hours()]
    hours = np.array([hours for _, hours in severe_hours()])
    supported = hours[None, :] <= (h + 1e-9)[:, None]
    last = len(names) - 1 - np.argmax(supported[:, ::-1], axis=1)
    ok = supported.any(axis=1).tolist()
    latest = [names[j] if k else "0h" for j, k in zip(last.tolist(), ok, strict=True)]
    return [a if a is not None else lm for a, lm in zip(asked, latest, strict=True)]


# Band evidence of a registered model version never changes: its dict is built once.
_BAND_DICTS: dict[tuple[str, str, str], dict[str, Any]] = {}
_NOT_SCORED: dict[tuple[Any, ...], dict[str, Any]] = {}


def _evidence_dict(model: LoadedModel, band: Any) -> dict[str, Any]:
    """A band's validation evidence as a ``BandEvidence``-shaped dict (built once per band)."""
    key = (model.name, model.version, band.name)
    d = _BAND_DICTS.get(key)
    if d is None:
        d = dataclasses.asdict(band)
        d["band"] = d.pop("name")
        _BAND_DICTS[key] = d
    return d


def _band_dicts(model: LoadedModel) -> list[tuple[str, dict[str, Any] | None]]:
    """(band name, ``BandEvidence``-shaped dict) of every band of ``model``."""
    from serving.store import band_names

    names = band_names(len(model.thresholds))
    return [
        (name, _evidence_dict(model, model.bands[i]) if i < len(model.bands) else None)
        for i, name in enumerate(names)
    ]


def _not_scored_dict(task: str, landmark: str, reason: str, model: LoadedModel | None) -> dict:
    """:func:`serving.scoring.not_scored` as a JSON-ready dict, built once per (task, model,
    reason) and shared by every patient it applies to (results are serialised, never changed)."""
    key = (task, landmark, reason, model.name if model else None, model.version if model else None)
    d = _NOT_SCORED.get(key)
    if d is None:
        d = _NOT_SCORED.setdefault(
            key, not_scored(task, landmark, reason, model).model_dump(mode="json")
        )
    return d


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
    """A batch as the cohort tables (``serving.scoring.Frames``) and, per patient, the request
    fields of :data:`FIELDS` — from request records (:func:`batch_input`) or straight from CSV
    columns (``serving.fastcsv``)."""

    frames: Frames
    fields: dict[str, list[Any]]


def batch_input(reqs: Sequence[Request]) -> BatchInput:
    """The requests (dicts, models or structs) as a :class:`BatchInput`."""
    return BatchInput(to_frames(reqs), {name: column(reqs, name) for name in FIELDS})


def score_batch(snapshot: Snapshot, batch: BatchInput | Sequence[Request]) -> BatchScores:
    """Vectorised scoring of many patients (raises ``RequestProblems`` for contract problems)."""
    from features.build import feature_matrix, patient_features
    from features.tasks import assign
    from serving.store import band_index

    if not isinstance(batch, BatchInput):
        batch = batch_input(batch)
    frames, fields = batch.frames, batch.fields
    n = len(fields["patient_ref"])
    _ids_as_codes(frames)
    valid = validate_frames_of(frames, batch=True)
    as_of = np.array([np.nan if v is None else v for v in fields["as_of_hours"]], dtype=np.float64)
    asked = fields["landmark"]
    chosen = landmarks(frames, as_of, asked)
    explain = fields["explain"]
    code_of = np.empty(n, dtype=np.int64)  # request index → patient code
    code_of[request_index(valid)] = np.arange(n)
    baseline = patient_features(valid.patients)
    chosen_arr = np.array(chosen, dtype=object)
    needed = sorted(set(chosen), key=lambda x: float(x[:-1]))
    plan = [(SEVERE, lm, np.flatnonzero(chosen_arr == lm)) for lm in needed]
    plan.append((TOCI, "first_toci", np.arange(n)))
    # per task slot (severe, toci): each patient's (response, audit) texts and model version
    texts: list[list[tuple[str, str]]] = [[("", "")] * n, [("", "")] * n]
    version: list[list[tuple[str, str] | None]] = [[None] * n, [None] * n]
    for task, lm, members in plan:
        slot = 0 if task == SEVERE else 1
        model = snapshot.get(task, lm)
        render = _Rendered(task, lm, model)
        m_list = members.tolist()
        if model is None:
            # the single route's reasons (serving.scoring.score_valid)
            missing = render.not_scored(
                f"no champion registered for {lm}" if task == SEVERE else "no champion registered"
            )
            for i in m_list:
                texts[slot][i] = missing
            continue
        mv = (model.name, model.version)
        for i in m_list:
            version[slot][i] = mv
        a = assign(valid.records, task, lm, require_label=False)
        codes = code_of[members]
        eligible = a.eligible[codes]
        for i, code in zip(members[~eligible].tolist(), codes[~eligible].tolist(), strict=True):
            texts[slot][i] = render.not_scored(str(a.reason[code]) or "not eligible")
        # feature_matrix returns its rows in patient-code order: sort the eligible members so
        # (with request indices ``who``) row r of X is patient ``who[r]``
        by_code = np.argsort(codes[eligible], kind="stable")
        rows = codes[eligible][by_code]
        if not len(rows):
            continue
        X = feature_matrix(a, baseline, rows)[:, feature_index(model.columns)]
        p = predict(model.model, pd.DataFrame(X, columns=list(model.columns)))
        who = members[eligible][by_code].tolist()
        for i, t in zip(
            who, render.scored(band_index(p, model.thresholds), p.tolist()), strict=True
        ):
            texts[slot][i] = t
        for r, i in enumerate(who):
            if explain[i]:
                top_k = int(fields["top_k"][i])
                d = scored(model, X[r], explain=True, top_k=top_k).model_dump(mode="json")
                texts[slot][i] = (_json(d), _json(d, set(OUTPUT_KEYS)))
    refs = fields["patient_ref"]
    severe, toci = texts
    items = [
        f'{{"index":{i},"patient_ref":{"null" if ref is None else _text(ref)},'
        f'"landmark":"{lm}","results":[{s[0]},{t[0]}],"errors":[]}}'
        for i, (ref, lm, s, t) in enumerate(zip(refs, chosen, severe, toci, strict=True))
    ]
    outputs = [f"[{s[1]},{t[1]}]" for s, t in zip(severe, toci, strict=True)]
    cache: dict[tuple[Any, Any], str] = {}
    versions = []
    for key in zip(*version, strict=True):
        v = cache.get(key)
        if v is None:
            v = cache[key] = json.dumps(dict(k for k in key if k is not None), sort_keys=True)
        versions.append(v)
    order = request_index(valid)
    digest_of = input_digests(
        valid.records, valid.patients, as_of[order], [asked[i] for i in order]
    )
    digests = [digest_of[c] for c in code_of.tolist()]
    return BatchScores(refs, items, outputs, versions, digests)
