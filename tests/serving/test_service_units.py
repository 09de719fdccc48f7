"""Fast serving tests that need no registered model: contract, audit, CSV, landmarks, OpenAPI."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
from pydantic import ValidationError

from features.errors import CrsRiskError
from serving.app import create_app
from serving.audit import AuditRecord, open_audit
from serving.bands import band_evidence, band_names, thresholds_of
from serving.batch_csv_exact import parse_csv
from serving.conversion import RequestProblems, validate_requests
from serving.examples import example_patients
from serving.schemas import EXAMPLE_REQUEST, BatchRequest, RiskRequest
from serving.scoring import choose_landmark
from serving.state import Settings

SNAPSHOT = Path(__file__).with_name("openapi.snapshot.json")


def _req(**kw) -> RiskRequest:
    body = {
        "patient": {"age_years": 9.0, "product": "tisagenlecleucel", "marrow_blasts_pct": 30.0},
        "measurements": [
            {"analyte": "crp", "hours_from_infusion": -100, "value": 1.2, "unit": "mg/dL"},
            {"analyte": "il6", "hours_from_infusion": 30, "value": 0.5, "unit": "ng/mL"},
        ],
        "events": [{"event": "crs_onset", "hours_from_infusion": 20, "grade": 1}],
    }
    body.update(kw)
    return RiskRequest.model_validate(body)


def test_request_becomes_canonical_cohort_with_units_converted():
    valid = validate_requests([_req()])
    m = valid.cohort.measurements.set_index("analyte")
    assert m.loc["crp", "value"] == pytest.approx(12.0)  # mg/dL → mg/L
    assert m.loc["il6", "value"] == pytest.approx(500.0)  # ng/mL → pg/mL
    assert m.loc["il6", "unit"] == "pg/mL"


def test_contract_problems_name_the_request_field():
    req = _req(
        measurements=[
            {"analyte": "crp", "hours_from_infusion": -100, "value": 1.2, "unit": "furlongs"},
            {"analyte": "ferritin", "hours_from_infusion": 10, "value": 9e9, "unit": "ng/mL"},
        ],
        events=[{"event": "tocilizumab", "hours_from_infusion": 20, "grade": 2}],
    )
    with pytest.raises(RequestProblems) as info:
        validate_requests([req])
    locs = {tuple(e["loc"]) for e in info.value.errors}
    assert ("body", "measurements", 0, "unit") in locs
    assert ("body", "measurements", 1, "value") in locs
    assert ("body", "events", 0, "grade") in locs
    assert all(e["msg"] for e in info.value.errors)


def test_batch_problems_name_the_patient():
    with pytest.raises(RequestProblems) as info:
        bad = _req(
            measurements=[{"analyte": "crp", "hours_from_infusion": 1, "value": 1, "unit": "kg"}]
        )
        validate_requests([_req(), bad], batch=True)
    assert info.value.errors[0]["loc"][:5] == ["body", "patients", 1, "measurements", 0]


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"patient": {"age_years": True}}, "age_years"),  # a boolean is not a number
        ({"patient": {"age_years": 250}}, "age_years"),  # outside the contract's range
        ({"patient": {"sex": "X"}}, "sex"),
        ({"patient": {"eye_colour": "blue"}}, "eye_colour"),  # unknown field
        ({"landmark": "337h"}, "landmark"),
        ({"top_k": 0}, "top_k"),
    ],
)
def test_pydantic_rejects_bad_fields(patch, field):
    body = {"patient": {}, **patch}
    with pytest.raises(ValidationError) as info:
        RiskRequest.model_validate_json(json.dumps(body))
    assert any(field in map(str, e["loc"]) for e in info.value.errors())


def test_non_finite_numbers_rejected():
    text = (
        '{"measurements": [{"analyte": "crp", "hours_from_infusion": 1e999, "value": 1, '
        '"unit": "mg/L"}]}'
    )
    with pytest.raises(ValidationError):
        RiskRequest.model_validate_json(text)


def test_landmark_is_the_latest_the_data_support():
    assert choose_landmark(_req())[0] == "24h"  # last record at 30 h
    assert choose_landmark(_req(as_of_hours=50))[0] == "48h"
    lm, trend, warnings = choose_landmark(_req(landmark="72h"))
    assert lm == "72h" and trend == ["0h", "24h", "48h", "72h"]
    assert warnings and warnings[0].code == "landmark"
    assert choose_landmark(RiskRequest())[0] == "0h"


def test_bands_and_evidence():
    assert thresholds_of({}, {"sensitivity_at_0.20": 1, "sensitivity_at_0.10": 1}) == (0.1, 0.2)
    assert thresholds_of({"thresholds": "[0.3, 0.05]"}, {}) == (0.05, 0.3)
    folds = pd.DataFrame({"y": [0, 0, 1, 1, 1, 0], "p": [0.01, 0.05, 0.15, 0.5, 0.9, 0.95]})
    bands = band_evidence(folds, (0.1, 0.2, 0.3))
    assert [b.name for b in bands] == list(band_names(3))
    assert [(b.n, b.events) for b in bands] == [(2, 0), (1, 1), (0, 0), (3, 2)]
    assert bands[3].ci_low < bands[3].observed < bands[3].ci_high


def test_audit_is_append_only_and_hashes_references(tmp_path):
    log = open_audit(tmp_path / "audit.sqlite")
    log.append(
        [
            AuditRecord(
                "rid-1",
                "MRN-123456",
                {"crs-severe-48h": "1"},
                "d" * 64,
                [{"task": "severe_crs", "probability": 0.2}],
            )
        ]
    )
    h1 = log.patient_hash("MRN-123456")
    assert h1 and h1 != "MRN-123456" and log.patient_hash("MRN-123456") == h1
    log.close()
    raw = (tmp_path / "audit.sqlite").read_bytes()
    assert b"MRN-123456" not in raw
    con = sqlite3.connect(tmp_path / "audit.sqlite")
    assert con.execute("SELECT count(*) FROM scores").fetchone()[0] == 1
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        con.execute("UPDATE scores SET outputs = '[]'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        con.execute("DELETE FROM scores")


def test_audit_refuses_unwritable_location(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(CrsRiskError, match="audit log"):
        open_audit(tmp_path / "file" / "audit.sqlite")
    (tmp_path / "adir").mkdir()
    with pytest.raises(CrsRiskError, match="audit log"):
        open_audit(tmp_path / "adir")


def test_serve_refuses_to_start_without_audit_log(cli, tmp_path):
    result = cli(
        "serve",
        "--tracking-uri",
        f"sqlite:///{tmp_path / 'mlflow.db'}",
        "--audit-db",
        tmp_path / "missing" / "audit.sqlite",
    )
    assert result.exit_code == 2
    assert "audit log folder does not exist" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_refuses_missing_store_folder(cli, tmp_path):
    result = cli(
        "serve",
        "--tracking-uri",
        f"sqlite:///{tmp_path / 'nowhere' / 'mlflow.db'}",
        "--audit-db",
        tmp_path / "audit.sqlite",
    )
    assert result.exit_code == 2
    assert "tracking store folder does not exist" in result.stderr


CSV = """patient_ref,record,hours_from_infusion,analyte,value,unit,event,grade,age_years,prior_hsct
A,patient,,,,,,,9.5,true
A,measurement,-120,crp,12,mg/L,,,,
A,event,20,,,,crs_onset,1,,
B,patient,,,,,,,15,no
"""


def test_csv_batch_parses_to_the_json_models():
    batch = parse_csv(CSV.encode())
    assert isinstance(batch, BatchRequest)
    a, b = batch.patients
    assert a.patient_ref == "A" and a.patient.age_years == 9.5 and a.patient.prior_hsct is True
    assert a.measurements[0].unit == "mg/L" and a.events[0].grade == 1
    assert b.patient.prior_hsct is False and not b.measurements


def test_csv_batch_names_line_and_column():
    bad = CSV.replace("-120,crp,12", "-120,crp,twelve")
    with pytest.raises(CrsRiskError, match=r"line 3, column value: is not a number"):
        parse_csv(bad.encode())
    with pytest.raises(CrsRiskError, match="record"):
        parse_csv(b"patient_ref,hours\nA,1\n")


def test_examples_are_valid_synthetic_requests():
    examples = example_patients()
    assert len(examples) >= 3
    reqs = [RiskRequest.model_validate(e["request"]) for e in examples]
    valid = validate_requests(reqs, batch=True)
    assert valid.cohort.n_patients == len(reqs)
    assert all(e["request"]["patient_ref"].startswith("synthetic-") for e in examples)
    example = RiskRequest.model_validate(EXAMPLE_REQUEST)
    assert validate_requests([example]).cohort.n_patients == 1


def test_openapi_snapshot(tmp_path):
    """The OpenAPI document is the contract: any change must be deliberate.

    Regenerate with ``UPDATE_OPENAPI_SNAPSHOT=1 pytest tests/serving/test_service_units.py``.
    """
    app = create_app(Settings(tracking_uri="sqlite:///unused.db", audit_db=tmp_path / "a.db"))
    doc = app.openapi()
    doc["info"].pop("version", None)
    text = json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    if os.environ.get("UPDATE_OPENAPI_SNAPSHOT") or not SNAPSHOT.exists():
        SNAPSHOT.write_text(text, encoding="utf-8")
    assert text == SNAPSHOT.read_text(encoding="utf-8")
    risk = doc["components"]["schemas"]["RiskRequest"]
    assert risk.get("examples"), "the request schema carries a complete example patient"
    age = doc["components"]["schemas"]["PatientIn"]["properties"]["age_years"]
    assert "years" in age["description"] or age.get("x-unit") == "y"
    for path in (
        "/v1/risk",
        "/v1/risk/batch",
        "/v1/models",
        "/v1/models/reload",
        "/v1/examples",
        "/healthz",
        "/readyz",
    ):
        assert path in doc["paths"]


def test_patient_rows_equal_the_training_feature_builder():
    """The service's per-patient rows are exactly features.build's rows (and its exclusions)."""
    from features.build import build_patient_features
    from serving.scoring import patient_rows

    compared = 0
    for e in example_patients():
        cohort = validate_requests([RiskRequest.model_validate(e["request"])]).cohort
        for task, lms in (
            ("severe_crs", ["0h", "24h", "48h", "72h"]),
            ("toci_refractory", ["first_toci"]),
        ):
            rows = patient_rows(cohort, task, lms)
            for lm in lms:
                table = build_patient_features(cohort, task, lm)
                row = rows[lm]
                if row.X is None:
                    assert len(table.X) == 0 and row.reason in table.summary["exclusions"]
                else:
                    assert list(row.X.columns) == list(table.X.columns)
                    assert (
                        row.X.to_numpy() == table.X.to_numpy()
                    ).sum() + row.X.isna().sum().sum() == row.X.size
                    compared += 1
    assert compared >= 5
