"""The batch route's msgspec decoder and the audit input digests (no registered model needed).

The msgspec structs are generated from the request models; they may only ever be *stricter*
than pydantic (a body they reject goes to pydantic), never more lenient, and a body they accept
must give exactly the tables pydantic's records give. The input digest is a function of what
the models read: invariant to record order and unit, sensitive to any value.
"""

from __future__ import annotations

import copy
import gc
import json
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from features.errors import CrsRiskError
from serving.batch import BatchInput, batch_input, column, landmarks
from serving.batch_body import collector_paused
from serving.batch_csv import csv_frames
from serving.batch_csv_exact import parse_csv_records
from serving.batch_json import decode_batch, struct_type
from serving.conversion import to_frames, validate_frames_of, validate_requests
from serving.digest import input_digests
from serving.examples import example_patients
from serving.schemas import EXAMPLE_REQUEST, PATIENT_FIELDS, RiskRequest, batch_records
from serving.scoring import choose_landmark, severe_hours
from tests.serving.test_service_fast_paths import BAD, same_tables


@pytest.fixture(scope="module")
def bodies() -> list[dict]:
    out = [e["request"] for e in example_patients()] + [copy.deepcopy(EXAMPLE_REQUEST)]
    variants = [
        {**copy.deepcopy(b), **patch}
        for b in out
        for patch in ({"landmark": "72h"}, {"as_of_hours": None}, {"as_of_hours": 30.0})
    ]
    return out + variants + [{"patient": {}}, {"explain": True, "top_k": 3}]


def test_structs_give_the_records_tables_and_request_fields(bodies):
    raw = json.dumps({"patients": bodies}).encode()
    structs = decode_batch(raw)
    assert structs is not None
    records = batch_records().validate_json(raw)["patients"]
    same_tables(to_frames(structs.patients), to_frames(records))
    for name in ("patient_ref", "landmark", "as_of_hours", "explain", "top_k"):
        assert column(structs.patients, name) == column(records, name), name
    frames = to_frames(structs.patients)
    as_of = np.array([np.nan if v is None else v for v in column(records, "as_of_hours")])
    chosen = landmarks(frames, as_of, column(records, "landmark"), severe_hours())[0]
    assert chosen == [choose_landmark(RiskRequest.model_validate(b))[0] for b in bodies]


@pytest.mark.parametrize("body", BAD)
def test_structs_reject_what_pydantic_rejects(body):
    assert decode_batch(json.dumps(body).encode()) is None


@pytest.mark.parametrize(
    "text",
    [
        b'{"patients": [{"as_of_hours": NaN}]}',
        b'{"patients": [{"patient": {"car_t_dose": 1e999}}]}',
        b'{"patients": [{"top_k": 3.0}]}',
        b'{"patients": [{"measurements": [{"analyte": "crp", "hours_from_infusion": 1, '
        b'"value": 1, "unit": "mg/L", "qualifier": "="}]}]}',
        b'{"patients": [{}], "patients": 3}',
        b"[]",
        b"",
        b'{"patients": [{"events": [{"event": "crs_grade", "grade": true}]}]}',
    ],
)
def test_edge_bodies_decided_like_pydantic(text):
    try:
        batch_records().validate_json(text)
        accepted = True
    except ValidationError:
        accepted = False
    if decode_batch(text) is not None:
        assert accepted, text  # never more lenient than the contract


_JUNK = st.sampled_from(
    [None, True, False, 0, -1, 3, 2.5, 1e13, -1e13, "", "x", "crp", "mg/L", "<", "72h", "F", [], {}]
)
_FIELDS = st.sampled_from(
    [
        ("patient_ref",),
        ("landmark",),
        ("as_of_hours",),
        ("explain",),
        ("top_k",),
        ("patient", "age_years"),
        ("patient", "sex"),
        ("patient", "prior_hsct"),
        ("patient", "unknown"),
        ("measurements", 0, "value"),
        ("measurements", 0, "unit"),
        ("measurements", 0, "analyte"),
        ("measurements", 1, "hours_from_infusion"),
        ("measurements", 2, "qualifier"),
        ("events", 0, "grade"),
        ("events", 0, "event"),
        ("events", 1, "hours_from_infusion"),
        ("events", 0, "dose_mg_per_kg"),
        ("unknown",),
    ]
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(_FIELDS, _JUNK, st.booleans()), min_size=1, max_size=3))
def test_mutated_bodies_decided_like_pydantic(edits):
    body: dict[str, Any] = copy.deepcopy(EXAMPLE_REQUEST)
    for path, value, delete in edits:
        target: Any = body
        for key in path[:-1]:
            target = target[key]
        if delete:
            target.pop(path[-1], None)
        else:
            target[path[-1]] = value
    raw = json.dumps({"patients": [body, EXAMPLE_REQUEST]}).encode()
    structs = decode_batch(raw)
    try:
        records = batch_records().validate_json(raw)["patients"]
    except ValidationError:
        assert structs is None, edits  # pydantic rejects → the fast path never accepts
        return
    if structs is not None:
        same_tables(to_frames(structs.patients), to_frames(records))
        for name in ("patient_ref", "landmark", "as_of_hours", "explain", "top_k"):
            assert column(structs.patients, name) == column(records, name)


def test_generation_refuses_what_msgspec_cannot_check():
    class WithValidator(BaseModel):
        model_config = ConfigDict(extra="forbid", strict=True)
        x: float

        @field_validator("x")
        @classmethod
        def positive(cls, v: float) -> float:
            return v

    class WithPattern(BaseModel):
        model_config = ConfigDict(extra="forbid", strict=True)
        x: str = Field(pattern="^a")

    class Lenient(BaseModel):
        x: float

    for model in (WithValidator, WithPattern, Lenient):
        with pytest.raises(TypeError):
            struct_type(model, {})


def test_collector_resumes_after_a_batch_even_on_error():
    assert gc.isenabled()
    with pytest.raises(RuntimeError), collector_paused():
        assert not gc.isenabled()
        with collector_paused():
            pass
        assert not gc.isenabled()  # the outer batch still runs
        raise RuntimeError("boom")
    assert gc.isenabled()


# --- input digests ---------------------------------------------------------------------------
def _digest(body: dict) -> str:
    valid = validate_requests([RiskRequest.model_validate(body)])
    as_of = np.array([np.nan if body.get("as_of_hours") is None else body["as_of_hours"]])
    return input_digests(valid.records, valid.patients, as_of, [body.get("landmark")])[0]


def test_digest_is_order_and_unit_invariant():
    base = copy.deepcopy(EXAMPLE_REQUEST)
    d = _digest(base)
    assert len(d) == 64
    shuffled = {**base, "measurements": base["measurements"][::-1], "patient_ref": "other"}
    assert _digest(shuffled) == d
    crp_mg_l = next(m for m in base["measurements"] if m["unit"] == "mg/dL")
    converted = copy.deepcopy(base)
    i = base["measurements"].index(crp_mg_l)
    converted["measurements"][i] = {**crp_mg_l, "value": crp_mg_l["value"] * 10, "unit": "mg/L"}
    assert _digest(converted) == d


@pytest.mark.parametrize(
    "patch",
    [
        {"as_of_hours": 49},
        {"landmark": "24h"},
        {"patient": {**EXAMPLE_REQUEST["patient"], "sex": "M"}},
        {"patient": {**EXAMPLE_REQUEST["patient"], "prior_hsct": None}},
        {"patient": {**EXAMPLE_REQUEST["patient"], "age_years": 12.6}},
        {"measurements": EXAMPLE_REQUEST["measurements"][:-1]},
        {"events": EXAMPLE_REQUEST["events"][:-1]},
    ],
)
def test_digest_changes_with_any_input(patch):
    assert _digest({**copy.deepcopy(EXAMPLE_REQUEST), **patch}) != _digest(EXAMPLE_REQUEST)


def test_digest_of_a_batch_equals_each_patient_alone(bodies):
    raw = json.dumps({"patients": bodies}).encode()
    structs = decode_batch(raw)
    assert structs is not None
    valid = validate_frames_of(to_frames(structs.patients), batch=True)
    as_of = np.array([np.nan if v is None else v for v in column(structs.patients, "as_of_hours")])
    batch = input_digests(
        valid.records, valid.patients, as_of, column(structs.patients, "landmark")
    )
    assert batch == [_digest(b) for b in bodies]
    assert len(set(batch)) > len(bodies) // 2


def test_csv_and_json_of_one_patient_have_one_digest():
    csv = (
        b"patient_ref,record,hours_from_infusion,analyte,value,unit,event,grade,age_years\n"
        b"A,patient,,,,,,,9.5\n"
        b"A,measurement,-120,crp,12,mg/L,,,\n"
        b"A,measurement,30,crp,5.5,mg/dL,,,\n"
        b"A,event,20,,,,crs_onset,1,\n"
    )
    body = {
        "patient": {"age_years": 9.5},
        "measurements": [
            {"analyte": "crp", "hours_from_infusion": 30, "value": 55, "unit": "mg/L"},
            {"analyte": "crp", "hours_from_infusion": -120, "value": 1.2, "unit": "mg/dL"},
        ],
        "events": [{"event": "crs_onset", "hours_from_infusion": 20, "grade": 1}],
    }
    records = parse_csv_records(csv)["patients"]
    valid = validate_frames_of(to_frames(records), batch=True)
    from_csv = input_digests(valid.records, valid.patients, np.array([np.nan]), [None])[0]
    assert from_csv == _digest(body)


# --- CSV: the Arrow fast path equals the exact path ---------------------------------------------
_CSV_HEAD = [
    "patient_ref",
    "record",
    "hours_from_infusion",
    "analyte",
    "value",
    "unit",
    "qualifier",
    "event",
    "grade",
    "dose_mg_per_kg",
    *PATIENT_FIELDS,
    "landmark",
    "as_of_hours",
]


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _csv_rows(bodies: list[dict]) -> list[list[str]]:
    rows = [_CSV_HEAD]
    for k, b in enumerate(bodies):
        ref = f"P{k}"
        at = {name: i for i, name in enumerate(_CSV_HEAD)}
        row = [""] * len(_CSV_HEAD)
        row[0], row[1] = ref, "patient"
        for name in (*PATIENT_FIELDS,):
            row[at[name]] = _cell(b.get("patient", {}).get(name))
        row[at["landmark"]], row[at["as_of_hours"]] = (
            _cell(b.get("landmark")),
            _cell(b.get("as_of_hours")),
        )
        rows.append(row)
        for m in b.get("measurements", []):
            r = [""] * len(_CSV_HEAD)
            r[0], r[1] = ref, "measurement"
            for name in ("hours_from_infusion", "analyte", "value", "unit", "qualifier"):
                r[at[name]] = _cell(m.get(name))
            rows.append(r)
        for e in b.get("events", []):
            r = [""] * len(_CSV_HEAD)
            r[0], r[1] = ref, "event"
            for name in ("hours_from_infusion", "event", "grade", "dose_mg_per_kg"):
                r[at[name]] = _cell(e.get(name))
            rows.append(r)
    return rows


def _csv_text(rows: list[list[str]]) -> bytes:
    import csv
    import io

    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode()


def _exact(raw: bytes) -> BatchInput | None:
    try:
        return batch_input(parse_csv_records(raw)["patients"])
    except (CrsRiskError, ValidationError):
        return None


def _same_input(fast: Any, exact: BatchInput) -> None:
    frames, fields = fast
    for table in ("patients", "measurements", "events"):
        a, b = frames.tables[table], exact.frames.tables[table]
        assert a.keys() == b.keys()
        for col, values in a.items():
            x, y = np.asarray(values, dtype=object), np.asarray(b[col], dtype=object)
            x = [None if (isinstance(v, float) and np.isnan(v)) else v for v in x.tolist()]
            y = [None if (isinstance(v, float) and np.isnan(v)) else v for v in y.tolist()]
            assert x == y, (table, col)
        for u, v in zip(frames.origin[table], exact.frames.origin[table], strict=True):
            assert np.array_equal(u, v)
    assert fields == exact.fields


def test_csv_fast_path_gives_the_exact_tables(bodies):
    plain = [b for b in bodies if not b.get("explain")]
    raw = _csv_text(_csv_rows(plain))
    fast = csv_frames(raw)
    exact = _exact(raw)
    assert fast is not None and exact is not None
    _same_input(fast, exact)


_CSV_JUNK = st.sampled_from(
    ["", " ", "x", "NA", "nan", "inf", "1e999", "2.5", "-1", "3", " 3", "1_0", "true", "Yes",
     "6", "200", "1e13", "-5000", "F", "crp", "mg/L", "<", "72h", "patient", "Event",
     "measurement", "P0", "y" * 200]
)  # fmt: skip


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.integers(0, 10_000), st.integers(0, len(_CSV_HEAD) - 1), _CSV_JUNK),
        min_size=1,
        max_size=4,
    )
)
def test_mutated_csv_decided_like_the_exact_path(edits):
    rows = _csv_rows([copy.deepcopy(EXAMPLE_REQUEST), {"patient": {"age_years": 3}}])
    for r, c, junk in edits:
        rows[1 + r % (len(rows) - 1)][c] = junk
    raw = _csv_text(rows)
    fast, exact = csv_frames(raw), _exact(raw)
    if exact is None:
        assert fast is None, edits  # the fast path never accepts what the exact path rejects
    elif fast is not None:
        _same_input(fast, exact)


@pytest.mark.parametrize(
    ("record", "column", "value"),
    [
        ("patient", "age_years", "100.5"),
        ("patient", "car_t_dose", "-0.1"),
        ("patient", "sex", "f"),
        ("patient", "prior_hsct", "maybe"),
        ("patient", "landmark", "337h"),
        ("patient", "as_of_hours", "1e6"),
        ("measurement", "value", "1e13"),
        ("measurement", "hours_from_infusion", "-3000"),
        ("measurement", "analyte", "CRP"),
        ("measurement", "unit", "u" * 33),
        ("measurement", "unit", ""),
        ("measurement", "qualifier", "="),
        ("event", "grade", "6"),
        ("event", "grade", "1.5"),
        ("event", "dose_mg_per_kg", "1001"),
        ("event", "event", "toci"),
        ("event", "event", ""),
    ],
)
def test_each_broken_rule_leaves_the_csv_to_the_exact_path(record, column, value):
    rows = _csv_rows([copy.deepcopy(EXAMPLE_REQUEST)])
    assert csv_frames(_csv_text(rows)) is not None
    row = next(r for r in rows[1:] if r[1] == record)
    row[_CSV_HEAD.index(column)] = value
    raw = _csv_text(rows)
    assert _exact(raw) is None  # the contract rejects it …
    assert csv_frames(raw) is None  # … so the fast path must not decide it


def test_audit_checkpoints_off_the_request_thread(tmp_path):
    import sqlite3
    import time

    from serving.audit import open_audit

    log = open_audit(tmp_path / "audit.sqlite")
    n = 6000
    refs = [f"P{i}" for i in range(n)]
    log.append_encoded("r1", refs, ['{"m": "1"}'] * n, ["d" * 64] * n, ["[]"] * n)
    db, wal = tmp_path / "audit.sqlite", tmp_path / "audit.sqlite-wal"
    assert wal.stat().st_size > n * 64  # committed: the records are in the write-ahead log
    deadline = time.monotonic() + 20
    while db.stat().st_size < n * 64 and time.monotonic() < deadline:
        time.sleep(0.02)  # the checkpoint thread copies them into the database file
    assert db.stat().st_size >= n * 64
    reader = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    assert reader.execute("SELECT count(*) FROM scores").fetchone()[0] == n
    reader.close()
    log.close()  # a final checkpoint empties the WAL
    assert not wal.exists() or wal.stat().st_size == 0
    con = sqlite3.connect(tmp_path / "audit.sqlite")
    assert con.execute("SELECT count(*) FROM scores").fetchone()[0] == n
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
