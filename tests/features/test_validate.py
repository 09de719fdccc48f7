"""One test per validation rule, each on a small hand-written cohort corrupted in one place.

Every check asserts the message names file, row, column and rule (and where it helps the kind of
the offending cell), that the cell's content is never shown and that no patient identifier
appears anywhere in the report.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.io import validate_folder
from features.validation import (
    FOR_SCORING,
    MAX_LISTED,
    Outputs,
    Problem,
    ValidationReport,
    validate_frames,
    validate_tables,
)
from tests.features.cohort_frames import IDS, frames, write_raw

Frames = dict[str, pd.DataFrame]


def _report(tmp_path: Path, mutate: Callable[[Frames], None]) -> ValidationReport:
    tables = frames()
    mutate(tables)
    return validate_folder(write_raw(tmp_path / "cohort", tables))


def _set(table: str, row: int, column: str, value: object) -> Callable[[Frames], None]:
    """Set the cell of 1-based data ``row`` (as a user counts rows under the header)."""

    def mutate(t: Frames) -> None:
        frame = t[table]
        if value is not None and not isinstance(value, str) and frame[column].dtype == "Int64":
            frame[column] = frame[column].astype("float64")
        if isinstance(value, str) and frame[column].dtype != object:
            frame[column] = frame[column].astype(object)
        frame.loc[row - 1, column] = value

    mutate.planted = value  # type: ignore[attr-defined]  # checked absent from the message
    return mutate


def _append(table: str, *row: object) -> Callable[[Frames], None]:
    def mutate(t: Frames) -> None:
        frame = t[table]
        t[table] = pd.concat(
            [frame, pd.DataFrame([row], columns=frame.columns[: len(row)])], ignore_index=True
        )

    return mutate


def _find(
    report: ValidationReport,
    file: str,
    row: int | None,
    column: str | None,
    rule: str,
    severity: str = "error",
) -> Problem:
    matches = [
        p
        for p in report.problems
        if p.file == file
        and p.row == row
        and p.column == column
        and rule in p.rule
        and p.severity == severity
    ]
    assert matches, f"no {severity} {file}:{row} {column} ~{rule!r} in:\n{report.render()}"
    return matches[0]


def _assert_no_ids(report: ValidationReport) -> None:
    text = report.render()
    assert "SECRET" not in text
    assert all("SECRET" not in str(p) for p in report.problems)


# (id, mutation, file, row, column, kind of cell shown, rule fragment, severity)
CASES = [
    (
        "wrong type in float column",
        _set("measurements", 3, "value", "high"),
        "measurements.csv",
        3,
        "value",
        "the cell holds text",
        "not a number",
        "error",
    ),
    (
        "wrong type in bool column",
        _set("patients", 2, "prior_hsct", "maybe"),
        "patients.csv",
        2,
        "prior_hsct",
        "the cell holds text",
        "not a boolean",
        "error",
    ),
    (
        "missing value in non-nullable column",
        _set("measurements", 5, "analyte", None),
        "measurements.csv",
        5,
        "analyte",
        None,
        "missing value in a required field",
        "error",
    ),
    (
        "value not in allowed set",
        _set("patients", 3, "sex", "X"),
        "patients.csv",
        3,
        "sex",
        None,
        "value not allowed (allowed: F, M)",
        "error",
    ),
    (
        "event not in vocabulary",
        _set("events", 3, "event", "toci"),
        "events.csv",
        3,
        "event",
        None,
        "value not allowed",
        "error",
    ),
    (
        "hard range",
        _set("patients", 1, "age_years", 150.0),
        "patients.csv",
        1,
        "age_years",
        "the value is above this range",
        "impossible value: outside 0–100 y",
        "error",
    ),
    (
        "soft range",
        _set("patients", 2, "weight_kg", 180.0),
        "patients.csv",
        2,
        "weight_kg",
        "the value is above this range",
        "implausible value: outside 5–150 kg",
        "warning",
    ),
    (
        "time outside hard range",
        _set("measurements", 4, "hours_from_infusion", 99999.0),
        "measurements.csv",
        4,
        "hours_from_infusion",
        "the value is above this range",
        "impossible value",
        "error",
    ),
    (
        "unknown analyte",
        _set("measurements", 2, "analyte", "C-reactive prot"),
        "measurements.csv",
        2,
        "analyte",
        None,
        "unknown analyte",
        "error",
    ),
    (
        "unit not accepted",
        _set("measurements", 2, "unit", "mg/dk"),
        "measurements.csv",
        2,
        "unit",
        None,
        "unit not accepted for crp (accepted: mg/L, mg/dL, µg/mL)",
        "error",
    ),
    (
        "negative IL-6",
        _set("measurements", 3, "value", -450.0),
        "measurements.csv",
        3,
        "value",
        "the value is below this range",
        "impossible il6 value: outside 0–1e+08 pg/mL",
        "error",
    ),
    (
        "temperature 60 °C after °F conversion",
        _set("measurements", 4, "value", 140.0),
        "measurements.csv",
        4,
        "value",
        "the value, converted to °C, is above this range",
        "impossible temperature value: outside 25–45 °C",
        "error",
    ),
    (
        "implausible converted value",
        _set("measurements", 4, "value", 109.4),
        "measurements.csv",
        4,
        "value",
        "the value, converted to °C, is above this range",
        "implausible temperature value",
        "warning",
    ),
    (
        "oxygen code 9",
        _set("measurements", 11, "value", 9.0),
        "measurements.csv",
        11,
        "value",
        "the value is above this range",
        "impossible oxygen_device value: outside 0–6 code",
        "error",
    ),
    (
        "non-integer value of an integer analyte",
        _set("measurements", 6, "value", 1.5),
        "measurements.csv",
        6,
        "value",
        None,
        "vasopressors takes whole numbers only",
        "error",
    ),
    (
        "qualifier not allowed",
        _set("measurements", 10, "qualifier", "<="),
        "measurements.csv",
        10,
        "qualifier",
        None,
        "value not allowed (allowed: <, >)",
        "error",
    ),
    (
        "duplicate patient_id",
        _set("patients", 4, "patient_id", IDS[1]),
        "patients.csv",
        4,
        "patient_id",
        None,
        "duplicate patient_id (one row per infusion) (first at row 2)",
        "error",
    ),
    (
        "conflicting duplicate measurement",
        _append("measurements", IDS[0], -24.0, "crp", 2.0, "mg/dL"),
        "measurements.csv",
        13,
        "value",
        None,
        "conflicting duplicate: same patient, time and analyte with a different value "
        "(differs from row 2)",
        "error",
    ),
    (
        "identical duplicate measurement (converted equal)",
        _append("measurements", IDS[0], -24.0, "crp", 12.0, "mg/L"),
        "measurements.csv",
        13,
        "value",
        None,
        "identical duplicate of an earlier row, dropped (same as row 2)",
        "warning",
    ),
    (
        "measurement of an unknown patient",
        _set("measurements", 12, "patient_id", "PT-SECRET-99"),
        "measurements.csv",
        12,
        "patient_id",
        None,
        "patient_id not found in the patients table",
        "error",
    ),
    (
        "event of an unknown patient",
        _set("events", 7, "patient_id", "PT-SECRET-99"),
        "events.csv",
        7,
        "patient_id",
        None,
        "patient_id not found in the patients table",
        "error",
    ),
    (
        "graded event without grade",
        _set("events", 1, "grade", None),
        "events.csv",
        1,
        "grade",
        None,
        "grade required for crs_onset",
        "error",
    ),
    (
        "grade outside the event's range",
        _set("events", 2, "grade", 7),
        "events.csv",
        2,
        "grade",
        "the value is above this range",
        "grade outside 0–5, the range of crs_grade",
        "error",
    ),
    (
        "crs_onset grade 0",
        _set("events", 8, "grade", 0),
        "events.csv",
        8,
        "grade",
        "the value is below this range",
        "grade outside 1–4, the range of crs_onset",
        "error",
    ),
    (
        "grade on a non-graded event",
        _set("events", 3, "grade", 2),
        "events.csv",
        3,
        "grade",
        None,
        "grade given for tocilizumab, which is not a graded event",
        "error",
    ),
    (
        "grade not a whole number",
        _set("events", 2, "grade", 2.5),
        "events.csv",
        2,
        "grade",
        None,
        "not a whole number",
        "error",
    ),
    (
        "dose on a non-drug event",
        _set("events", 4, "dose_mg_per_kg", 8.0),
        "events.csv",
        4,
        "dose_mg_per_kg",
        None,
        "dose given for icu_admission, which is not a drug event",
        "warning",
    ),
    (
        "crs_grade before crs_onset",
        _set("events", 2, "hours_from_infusion", 10.0),
        "events.csv",
        2,
        "hours_from_infusion",
        None,
        "timed before this patient's crs_onset (crs_onset at row 1)",
        "error",
    ),
    (
        "crs_resolved before crs_onset",
        _set("events", 6, "hours_from_infusion", 5.0),
        "events.csv",
        6,
        "hours_from_infusion",
        None,
        "timed before this patient's crs_onset (crs_onset at row 1)",
        "error",
    ),
    (
        "crs_max_grade before crs_onset",
        _append("events", IDS[2], 25.0, "crs_max_grade", 3),
        "events.csv",
        11,
        "hours_from_infusion",
        None,
        "timed before this patient's crs_onset (crs_onset at row 8)",
        "error",
    ),
    (
        "event after death",
        _append("events", IDS[2], 250.0, "tocilizumab"),
        "events.csv",
        11,
        "hours_from_infusion",
        None,
        "timed after this patient's death (death at row 10)",
        "error",
    ),
    (
        "icu_discharge before icu_admission",
        _set("events", 5, "hours_from_infusion", 50.0),
        "events.csv",
        5,
        "hours_from_infusion",
        None,
        "icu_discharge before its icu_admission (icu_admission at row 4)",
        "error",
    ),
    (
        "more than one crs_onset",
        _append("events", IDS[0], 25.0, "crs_onset", 1),
        "events.csv",
        11,
        "event",
        None,
        "more than one crs_onset for this patient (first at row 1)",
        "error",
    ),
    (
        "death twice",
        _append("events", IDS[2], None, "death"),
        "events.csv",
        11,
        "event",
        None,
        "death recorded more than once for this patient (first at row 10)",
        "error",
    ),
    (
        "icu_discharge without admission",
        _append("events", IDS[1], 10.0, "icu_discharge"),
        "events.csv",
        11,
        "event",
        None,
        "icu_discharge without an earlier icu_admission",
        "warning",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "file", "row", "column", "kind", "rule", "severity"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_rule(tmp_path, mutate, file, row, column, kind, rule, severity):
    report = _report(tmp_path, mutate)
    problem = _find(report, file, row, column, rule, severity)
    assert problem.kind == kind
    assert report.ok is (severity == "warning"), report.render()
    line = problem.render()
    assert line.startswith(f"{file}:{row} column={column} — ")
    assert rule in line and (kind is None or line.endswith(f"; {kind}"))
    assert line in report.render()
    planted = getattr(mutate, "planted", None)
    if isinstance(planted, str) and len(planted) > 2:
        # the submitted text is never shown (as it was, quoted; vocabulary lists may contain it)
        assert f"'{planted}'" not in report.render() and f"={planted}" not in report.render()
    _assert_no_ids(report)


def test_valid_cohort_has_no_problems(tmp_path):
    report = _report(tmp_path, lambda t: None)
    assert report.ok and report.problems == [], report.render()
    assert report.cohort is not None
    assert "is valid" in report.render()


def test_row_number_is_the_csv_line_minus_one(tmp_path):
    report = _report(tmp_path, _set("measurements", 7, "unit", "furlongs"))
    problem = _find(report, "measurements.csv", 7, "unit", "unit not accepted for platelets")
    lines = (tmp_path / "cohort" / "measurements.csv").read_text().splitlines()
    assert "furlongs" in lines[problem.row]  # lines[0] is the header


def test_missing_file(tmp_path):
    folder = write_raw(tmp_path / "cohort", frames())
    (folder / "events.csv").unlink()
    report = validate_folder(folder)
    _find(report, "cohort", None, None, "required table 'events' missing")
    assert not report.ok


def test_missing_required_column(tmp_path):
    def mutate(t: Frames) -> None:
        t["measurements"] = t["measurements"].drop(columns="unit")

    report = _report(tmp_path, mutate)
    _find(report, "measurements.csv", None, "unit", "required column missing")


def test_unknown_column_is_a_warning_and_ignored(tmp_path):
    def mutate(t: Frames) -> None:
        t["patients"]["centre"] = "x"

    report = _report(tmp_path, mutate)
    _find(report, "patients.csv", None, "centre", "unknown column, ignored", "warning")
    assert "did you mean 'center'" in report.render()
    assert report.ok and report.cohort is not None
    assert "centre" not in report.cohort.patients.columns


def test_duplicate_column_in_header(tmp_path):
    folder = write_raw(tmp_path / "cohort", frames())
    text = (folder / "patients.csv").read_text().splitlines()
    text = [line + "," + line.split(",")[1] for line in text]
    text[0] = text[0].rsplit(",", 1)[0] + ",center"
    (folder / "patients.csv").write_text("\n".join(text) + "\n")
    report = validate_folder(folder)
    _find(report, "patients.csv", None, "center", "column appears more than once")


def test_booleans_accept_common_spellings_case_insensitively(tmp_path):
    spellings = ["TRUE", "False", "1", "0"]

    def mutate(t: Frames) -> None:
        t["patients"]["prior_hsct"] = spellings
        t["patients"]["extramedullary_disease"] = ["Yes", "no", "yes", "NO"]

    report = _report(tmp_path, mutate)
    assert report.ok, report.render()
    assert report.cohort is not None
    patients = report.cohort.patients
    assert patients["prior_hsct"].tolist() == [True, False, True, False]
    assert patients["extramedullary_disease"].tolist() == [True, False, True, False]


def test_many_problems_of_one_kind_are_listed_compactly(tmp_path):
    n_bad = MAX_LISTED + 15

    def mutate(t: Frames) -> None:
        extra = pd.DataFrame(
            {
                "patient_id": IDS[3],
                "hours_from_infusion": np.arange(n_bad, dtype=float) + 200,
                "analyte": "crp",
                "value": 5.0,
                "unit": "mg/dk",
            }
        )
        t["measurements"] = pd.concat([t["measurements"], extra], ignore_index=True)

    report = _report(tmp_path, mutate)
    unit_problems = [p for p in report.errors if p.column == "unit"]
    assert len(unit_problems) == MAX_LISTED + 1
    assert [p.row for p in unit_problems[:MAX_LISTED]] == list(range(13, 13 + MAX_LISTED))
    summary = unit_problems[-1]
    assert summary.row is None and summary.more == n_bad - MAX_LISTED
    assert report.n_errors == n_bad
    assert f"… and {n_bad - MAX_LISTED:,} more rows" in report.render()


def test_patient_id_in_another_column_is_hidden(tmp_path):
    report = _report(tmp_path, _set("patients", 2, "sex", IDS[0]))
    problem = _find(report, "patients.csv", 2, "sex", "value not allowed")
    assert problem.kind == "the cell equals a patient id"
    _assert_no_ids(report)


def test_headerless_file_does_not_echo_its_first_row(tmp_path):
    folder = write_raw(tmp_path / "cohort", frames())
    lines = (folder / "patients.csv").read_text().splitlines()
    (folder / "patients.csv").write_text("\n".join(lines[1:]) + "\n")
    report = validate_folder(folder)
    _find(report, "patients.csv", None, None, "no expected column found in the header")
    _assert_no_ids(report)


def test_semicolon_separated_file_gets_a_hint(tmp_path):
    folder = write_raw(tmp_path / "cohort", frames())
    frames()["patients"].to_csv(folder / "patients.csv", sep=";", index=False)
    report = validate_folder(folder)
    _find(report, "patients.csv", None, None, "';'-separated")


def test_ragged_csv_row_is_named(tmp_path):
    folder = write_raw(tmp_path / "cohort", frames())
    with (folder / "events.csv").open("a") as fh:
        fh.write(f"{IDS[0]},130,tocilizumab,,8,unexpected\n")
    report = validate_folder(folder)
    _find(report, "events.csv", 11, None, "row has 6 field(s), the header has 5")
    _assert_no_ids(report)


def test_empty_patients_table(tmp_path):
    def mutate(t: Frames) -> None:
        t["patients"] = t["patients"].iloc[:0]
        t["measurements"] = t["measurements"].iloc[:0]
        t["events"] = t["events"].iloc[:0]

    report = _report(tmp_path, mutate)
    _find(report, "patients.csv", None, None, "no patients")


def test_blank_rows_are_ignored_with_a_warning(tmp_path):
    folder = write_raw(tmp_path / "cohort", frames())
    with (folder / "measurements.csv").open("a") as fh:
        fh.write(",,,,,\n")
    report = validate_folder(folder)
    _find(report, "measurements.csv", 13, None, "empty row, ignored", "warning")
    assert report.ok and report.cohort is not None
    assert len(report.cohort.measurements) == 12


def test_validate_frames_accepts_dataframes_directly():
    tables = frames()
    report = validate_tables(tables, "in-memory")
    assert report.ok, report.render()
    tables["measurements"].loc[1, "unit"] = "mg/dk"
    report = validate_tables(tables, "in-memory")
    _find(report, "measurements", 2, "unit", "unit not accepted")


def test_outputs_select_what_a_valid_cohort_returns():
    tables = frames()
    full = validate_tables(tables, "in-memory", outputs=Outputs(records=True, typed_frames=True))
    assert full.cohort is not None and full.summary and full.cohort.digest
    assert full.records is not None and full.patient_columns is not None and full.frames
    light = validate_tables(tables, "in-memory", outputs=FOR_SCORING)
    assert light.cohort is None and not light.summary and light.frames is None
    assert light.records is not None and light.records.n == full.records.n
    bare = validate_tables(tables, "in-memory", outputs=Outputs(summary=False, digest=False))
    assert bare.cohort is not None and bare.cohort.digest == "" and not bare.summary
    assert bare.records is None
    with pytest.raises(ValueError, match="needs records=True"):
        Outputs(cohort=False)


def test_keyword_form_is_the_same_validation():
    tables = frames()
    tables["measurements"].loc[1, "unit"] = "mg/dk"
    old = validate_frames(tables, "in-memory", summary=False, digest=False, records=True)
    new = validate_tables(
        tables, "in-memory", outputs=Outputs(summary=False, digest=False, records=True)
    )
    assert old.problems == new.problems and not new.ok
