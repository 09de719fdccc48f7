"""The service's fast paths equal its reference paths (no registered model needed).

Batch bodies are validated into plain dicts by the request models' own field rules
(``serving.schemas.batch_records``) and read column-wise; the CSV is converted column by
column; landmarks are chosen vectorised. Each must give exactly what the model-object path
gives, errors included.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from serving.batch import batch_input, landmarks
from serving.batch_csv_exact import parse_csv, parse_csv_records
from serving.conversion import Frames, to_frames
from serving.examples import example_patients
from serving.schemas import EXAMPLE_REQUEST, BatchRequest, batch_records
from serving.scoring import choose_landmark, severe_hours


@pytest.fixture(scope="module")
def bodies() -> list[dict]:
    out = [e["request"] for e in example_patients()] + [copy.deepcopy(EXAMPLE_REQUEST)]
    variants = []
    for b in out:
        for patch in ({"landmark": "72h"}, {"as_of_hours": None}, {"as_of_hours": 30.0}):
            variants.append({**copy.deepcopy(b), **patch})
    return out + variants + [{"patient": {}}]


BAD = [
    {"patients": []},
    {"patients": [{"patient": {"age_years": True}}]},
    {"patients": [{"patient": {"age_years": 250, "sex": "X", "eye": "blue"}}]},
    {"patients": [{"landmark": "337h", "top_k": 0, "explain": "yes"}]},
    {"patients": [{"measurements": [{"analyte": "crp", "hours_from_infusion": 1, "value": 1}]}]},
    {"patients": [{"measurements": [{"analyte": "x", "hours_from_infusion": "1", "value": 1}]}]},
    {"patients": [{"events": [{"event": "tocilizumab", "grade": 9, "dose_mg_per_kg": -1}]}]},
    {"patients": [{"patient_ref": "x" * 200}], "extra": 1},
]


@pytest.mark.parametrize("body", BAD)
def test_batch_records_reject_what_the_model_rejects(body):
    text = json.dumps(body)
    with pytest.raises(ValidationError) as model:
        BatchRequest.model_validate_json(text)
    with pytest.raises(ValidationError) as records:
        batch_records().validate_json(text)
    assert [(e["loc"], e["msg"], e["type"]) for e in model.value.errors()] == [
        (e["loc"], e["msg"], e["type"]) for e in records.value.errors()
    ]


def test_non_finite_numbers_rejected_in_batch_records():
    text = '{"patients": [{"as_of_hours": NaN}]}'
    with pytest.raises(ValidationError):
        batch_records().validate_json(text)


def same_tables(a: Frames, b: Frames) -> None:
    """Two requests' cohort tables are equal, column by column, with each row's origin."""
    for table in ("patients", "measurements", "events"):
        assert a.tables[table].keys() == b.tables[table].keys()
        for col, values in a.tables[table].items():
            other = b.tables[table][col]
            if values.dtype.kind == "f":
                assert np.array_equal(values, other, equal_nan=True), (table, col)
            else:
                assert values.tolist() == other.tolist(), (table, col)
        assert all(
            np.array_equal(x, y) for x, y in zip(a.origin[table], b.origin[table], strict=True)
        )


def test_records_and_models_give_the_same_tables_and_landmarks(bodies):
    records = batch_records().validate_json(json.dumps({"patients": bodies}))["patients"]
    models = BatchRequest.model_validate({"patients": bodies}).patients
    a, b = to_frames(records), to_frames(models)
    same_tables(a, b)
    chosen = [choose_landmark(m)[0] for m in models]
    by_records, by_models = batch_input(records), batch_input(models)

    def chosen_by(x: Any) -> list[str]:
        as_of = np.array([np.nan if v is None else v for v in x.fields["as_of_hours"]])
        return landmarks(x.frames, as_of, x.fields["landmark"], severe_hours())[0]

    assert chosen_by(by_records) == chosen == chosen_by(by_models)
    assert len(set(chosen)) > 1


CSV = """patient_ref,record,hours_from_infusion,analyte,value,unit,event,grade,age_years,prior_hsct
A,patient,,,,,,,9.5,true
A,measurement,-120,crp,12,mg/L,,,,
A,event,20,,,,crs_onset,1,,
B,patient,,,,,,,15,no
B,event,30,,,,crs_grade, 2 ,,
"""


def test_csv_records_are_the_models_records():
    assert BatchRequest.model_validate(parse_csv_records(CSV.encode())) == parse_csv(CSV.encode())


def test_csv_problems_in_row_order_first_twenty():
    rows = "".join(f"C,measurement,{i},crp,x{i},mg/L,,,,\n" for i in range(30))
    bad = CSV.replace("9.5,true", "nine,maybe").replace("crs_onset,1", "crs_onset,1.5") + rows
    with pytest.raises(Exception, match=r"^CSV: line 2, column age_years: is not a number") as info:
        parse_csv_records(bad.encode())
    text = str(info.value)
    assert text.count("; ") == 19  # twenty problems listed
    assert "line 2, column prior_hsct: is not true/false" in text
    assert "line 4, column grade: is not a whole number" in text
    assert "line 7, column value: is not a number" in text
    for cell in ("nine", "maybe", "1.5", "x0"):  # the message never echoes a cell
        assert f"'{cell}'" not in text
