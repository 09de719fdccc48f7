"""The one-patient fast paths change nothing: validator problems, records, patient columns and
feature rows are bit-identical to the reference implementation (issue 7 latency).

The reference is the ``features`` package at :data:`REFERENCE` (the commit before the fast
paths), loaded from git under another package name; the same inputs — single requests as the
service builds them, broken requests, and a simulated cohort — go through both. When a later
change *means* to alter these outputs, move :data:`REFERENCE` to the commit that has it (issue
11 moved it to the semantics change: eligibility, expiring derived grades, treatment features,
the decision landmark and the ``indication`` column of the records).
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import itertools
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pytest

from features import build, tasks
from features.records import Records
from features.synth.simulate import simulate
from features.validation import validate_frames

REFERENCE = "8fd591f"
REPO = Path(__file__).resolve().parents[2]
FILES = {"patients": "patient", "measurements": "measurements", "events": "events"}
SEVERE_LMS = ("0h", "24h", "48h", "72h")


@pytest.fixture(scope="module")
def ref(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ModuleType]:
    """The reference ``features`` package, importable as ``crs_ref_features``."""
    if shutil.which("git") is None:
        pytest.skip("git not available")
    listing = subprocess.run(
        ["git", "ls-tree", "-r", "--name-only", REFERENCE, "features"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    if listing.returncode != 0:
        pytest.skip(f"reference commit {REFERENCE} not in this checkout")
    root = tmp_path_factory.mktemp("ref")
    for name in listing.stdout.split():
        if not name.endswith(".py"):
            continue
        text = subprocess.run(
            ["git", "show", f"{REFERENCE}:{name}"], cwd=REPO, capture_output=True, text=True
        ).stdout
        text = text.replace("from features.", "from crs_ref_features.").replace(
            "import features.", "import crs_ref_features."
        )
        target = root / name.replace("features", "crs_ref_features", 1)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    sys.path.insert(0, str(root))
    try:
        return {
            m: importlib.import_module(f"crs_ref_features.{m}")
            for m in ("validate", "tasks", "build", "landmark")
        }
    finally:
        sys.path.remove(str(root))


# --- inputs ------------------------------------------------------------------------------------
def request_tables(body: dict[str, Any]) -> dict[str, dict[str, np.ndarray]]:
    """The tables the service validates for one request body (``serving.conversion.to_frames``):
    a ``RiskRequest``, or the plain record a batch hands over when the request model would
    reject the body first (so the validator's own rules are reached)."""
    from pydantic import ValidationError

    from serving.conversion import to_frames
    from serving.schemas import RiskRequest

    try:
        return to_frames([RiskRequest.model_validate(body)]).tables
    except ValidationError:
        return to_frames([copy.deepcopy(body)]).tables


def bodies() -> list[tuple[str, dict[str, Any]]]:
    """Every example request, and variants that trip validator rules and grading branches."""
    from serving.examples import example_patients

    out = [(f"example{i}", e["request"]) for i, e in enumerate(example_patients())]
    base = out[1][1]  # CRS treated with tocilizumab: events and support rows
    m0 = base["measurements"][0]

    def variant(name: str, change: Any) -> None:
        body = copy.deepcopy(base)
        change(body)
        out.append((name, body))

    variant("unknown_analyte", lambda b: b["measurements"].append({**m0, "analyte": "il-66"}))
    variant("bad_unit", lambda b: b["measurements"].append({**m0, "unit": "furlongs"}))
    variant("implausible", lambda b: b["measurements"].append({**m0, "value": 1e9}))
    variant(
        "duplicate", lambda b: b["measurements"].extend([dict(m0), {**m0, "value": m0["value"]}])
    )
    variant("conflict", lambda b: b["measurements"].append({**m0, "value": m0["value"] + 1}))
    variant("unsorted", lambda b: b["measurements"].reverse())
    variant("alias_case", lambda b: b["measurements"].append({**m0, "analyte": " CRP "}))

    def support(hours: float, extra: list[tuple[str, float, float, str]]) -> Any:
        """Support rows instead of a recorded CRS course (ASTCT grades derived from them)."""

        def change(b: dict[str, Any]) -> None:
            b["events"] = [e for e in b["events"] if not e["event"].startswith("crs")]
            b["measurements"].extend(
                {"analyte": a, "hours_from_infusion": hours + dt, "value": v, "unit": u}
                for a, dt, v, u in [("temperature", 0.0, 39.0, "C"), *extra]
            )

        return change

    for h in (20.0, 30.0, 47.0):
        variant(f"hypotension{h:g}", support(h, [("hypotension", 1.0, 1, "flag")]))
        variant(f"vasopressors{h:g}", support(h, [("vasopressors", 0.5, 2, "count")]))
        variant(f"vasopressor{h:g}", support(h, [("vasopressors", 0.5, 1, "count")]))
        variant(f"flow{h:g}", support(h, [("oxygen_flow", 1.0, 8, "L/min")]))
        variant(f"cannula{h:g}", support(h, [("oxygen_device", 1.0, 1, "code")]))
        variant(f"cpap{h:g}", support(h, [("oxygen_device", 1.0, 5, "code")]))
    variant("no_events", lambda b: b.__setitem__("events", []))
    variant(
        "patient_bad",
        lambda b: b["patient"].update({"age_years": 250.0, "weight_kg": 900.0, "sex": "X"}),
    )
    variant(
        "late_onset",
        lambda b: b["events"].append(
            {"event": "crs_grade", "hours_from_infusion": 1.0, "grade": 4}
        ),
    )
    return out


# --- comparison --------------------------------------------------------------------------------
def same_array(a: Any, b: Any, what: str) -> None:
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype and a.shape == b.shape, what
    if a.dtype == object:
        assert [repr(x) for x in a.tolist()] == [repr(x) for x in b.tolist()], what
    else:
        assert a.tobytes() == b.tobytes(), what  # bit for bit (NaN payloads, signed zeros)


def same_records(a: Records, b: Any, what: str) -> None:
    assert a.n == b.n, what
    for f in dataclasses.fields(Records):
        if f.name != "n":
            same_array(getattr(a, f.name), getattr(b, f.name), f"{what}: {f.name}")


def same_columns(a: dict[str, Any], b: dict[str, Any], what: str) -> None:
    assert list(a) == list(b), what
    for k in a:
        x, y = a[k], b[k]
        assert type(x) is type(y), f"{what}: {k}"
        if isinstance(x, pd.Categorical):
            assert x.dtype == y.dtype, f"{what}: {k}"
            same_array(x.codes, y.codes, f"{what}: {k}")
        elif isinstance(x, pd.api.extensions.ExtensionArray):
            assert x.dtype == y.dtype, f"{what}: {k}"
            same_array(x._data, y._data, f"{what}: {k}")  # type: ignore[attr-defined]
            same_array(x._mask, y._mask, f"{what}: {k}")  # type: ignore[attr-defined]
        else:
            same_array(x, y, f"{what}: {k}")


def same_features(rec: Records, cols: dict[str, Any], r_rec: Any, r_cols: Any, ref: Any) -> None:
    """Severe-CRS rows at every landmark (one pass) and at each alone, and the toci row."""
    base, r_base = build.patient_features(cols), ref["build"].patient_features(r_cols)
    same_array(base, r_base, "patient features")
    for lms in (SEVERE_LMS, *((lm,) for lm in SEVERE_LMS)):
        a = tasks.assign_landmarks(rec, "severe_crs", lms)
        b = ref["tasks"].assign_landmarks(r_rec, "severe_crs", lms)
        for f in ("landmark", "eligible", "y", "reason"):
            same_array(getattr(a, f), getattr(b, f), f"severe {lms}: {f}")
        reps = len(lms)
        same_array(
            build.feature_matrix(a, np.repeat(base, reps, axis=0)),
            ref["build"].feature_matrix(b, np.repeat(r_base, reps, axis=0)),
            f"severe {lms}: features",
        )
    for require_label, lm in itertools.product((False, True), ("decision", "first_toci")):
        a = tasks.assign(rec, "toci_refractory", lm, require_label=require_label)
        b = ref["tasks"].assign(r_rec, "toci_refractory", lm, require_label=require_label)
        for f in ("landmark", "eligible", "y", "reason"):
            same_array(getattr(a, f), getattr(b, f), f"toci {lm}: {f}")
        same_array(build.feature_matrix(a, base), ref["build"].feature_matrix(b, r_base), lm)


def problem_shape(p: Any) -> tuple:
    """A problem without its wording: file, row, column, the rule's stem (before any
    parenthesised detail), severity and overflow count. Messages stopped quoting cells after the
    reference (a cell's kind instead of its value, other rows named instead of their values): a
    change of wording meant, while the problems found must stay the same."""
    return (p.file, p.row, p.column, p.rule.split(" (")[0], p.severity, p.more)


def validate_both(tables: dict[str, Any], ref: dict[str, ModuleType], **kw: Any) -> tuple:
    new = validate_frames(tables, "request", **kw)
    old = ref["validate"].validate_frames(tables, "request", **kw)
    assert [problem_shape(p) for p in new.problems] == [problem_shape(p) for p in old.problems]
    return new, old


# --- tests -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "body"), bodies(), ids=[n for n, _ in bodies()])
def test_single_request_is_bit_identical(name: str, body: dict, ref: dict) -> None:
    kw = dict(files=FILES, summary=False, digest=False, records=True, frames=False)
    new, old = validate_both(request_tables(body), ref, **kw)
    assert new.ok == old.ok
    if not new.ok:
        assert new.records is None and old.records is None
        return
    same_records(new.records, old.records, name)
    same_columns(new.patient_columns, old.patient_columns, name)
    same_features(new.records, new.patient_columns, old.records, old.patient_columns, ref)


def test_cohort_is_bit_identical(ref: dict) -> None:
    sim = simulate(60, seed=11)
    tables = {"patients": sim.patients, "measurements": sim.measurements, "events": sim.events}
    # a shuffled copy with a few broken cells: the cohort paths of every rule
    broken = {
        k: v.sample(frac=1, random_state=2).reset_index(drop=True).astype(object)
        for k, v in tables.items()
    }
    broken["measurements"].loc[3, "unit"] = "furlongs"
    broken["measurements"].loc[5, "value"] = -1.0
    broken["patients"].loc[0, "age_years"] = 250.0
    for t in (tables, broken):
        validate_both(t, ref, summary=False, digest=False)
    new, old = validate_both(tables, ref, records=True)
    same_records(new.records, old.records, "cohort")
    same_columns(new.patient_columns, old.patient_columns, "cohort")
    same_features(new.records, new.patient_columns, old.records, old.patient_columns, ref)
    one = {
        k: v[v["patient_id"] == sim.patients["patient_id"].iloc[0]].reset_index(drop=True)
        for k, v in tables.items()
    }  # a single patient given as frames
    new, old = validate_both(one, ref, records=True)
    same_records(new.records, old.records, "one patient")
    same_features(new.records, new.patient_columns, old.records, old.patient_columns, ref)
