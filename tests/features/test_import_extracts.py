"""Hospital extracts imported with a mapping alone (issue 11 §1, §3, §7; issue 17 §4): a wide
patient-day table, a long lab export with calendar dates, day-granular placement, same-time
conflicting grades, value maps, per-row units, row events with indication, imputed constants and
assay limits, and messages that never show a patient id or break on braces."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import yaml

from features.errors import CrsRiskError
from features.importer import import_cohort
from features.io import load_cohort
from features.mapping_docs import render_import_mapping

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "docs" / "examples"
DOC = REPO / "docs" / "import-mapping.md"
YN = {"Y": True, "N": False}


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text.strip() + "\n", encoding="utf-8")
    return path


def dump(path: Path, mapping: dict) -> Path:
    path.write_text(yaml.safe_dump(mapping, sort_keys=False, allow_unicode=True), "utf-8")
    return path


def example_mapping(name: str) -> dict:
    return yaml.safe_load((EXAMPLES / name / "mapping.yaml").read_text(encoding="utf-8"))


def at(frame: pd.DataFrame, pid: str, what: str, column: str = "event") -> pd.DataFrame:
    return frame[(frame["patient_id"] == pid) & (frame[column] == what)]


# --- the worked examples ------------------------------------------------------------------------
def test_import_mapping_doc_is_generated_and_up_to_date():
    assert DOC.read_text(encoding="utf-8") == render_import_mapping(), (
        "docs/import-mapping.md is stale: python -m features.mapping_docs > docs/import-mapping.md"
    )
    text = DOC.read_text(encoding="utf-8")
    for key in ("placement", "grade_conflicts", "no_crs_record", "analyte_values", "infusion"):
        assert f"`{key}`" in text
    assert (REPO / "experiments" / "mappings" / "car22.yaml").read_text("utf-8") in text


def test_wide_patient_day_extract_imports_with_a_mapping_alone(tmp_path, cli):
    """Acceptance (issue 11): one row per patient-day, patient columns repeated, relative day,
    sex as text, a daily CRS grade and daily drug flags with indication — no pre-processing."""
    folder = EXAMPLES / "patient-day"
    out = tmp_path / "cohort"
    result = cli("cohort", "import", "--mapping", folder / "mapping.yaml", "--out", out, folder)
    assert result.exit_code == 0, result.stderr
    assert cli("cohort", "validate", out).exit_code == 0
    assert "dropped 12: identical repeat of a patient row (rows: repeated)" in result.stdout
    assert "times: days: whole days known at end of day" in result.stdout
    cohort = load_cohort(out)
    p = cohort.patients.set_index("patient_id")
    assert p["sex"].tolist() == ["F", "M", "F"]
    assert p["product"].tolist() == ["tisagenlecleucel", "ARI-0001", "tisagenlecleucel"]

    m = cohort.measurements
    # day −1 → known at 0 h (pre-infusion); day 0 → 24 h (never pre-infusion)
    assert at(m, "A01", "crp", "analyte")["hours_from_infusion"].tolist()[:2] == [0.0, 24.0]
    # per-row unit column: A01's CRP in mg/dL (0.4 → 4 mg/L on load), B02's in mg/L
    assert at(m, "A01", "crp", "analyte")["value"].iloc[0] == pytest.approx(4.0)
    assert at(m, "B02", "crp", "analyte")["value"].iloc[0] == pytest.approx(3.0)
    oxygen = at(m, "A01", "oxygen_device", "analyte").set_index("hours_from_infusion")["value"]
    assert oxygen.loc[96.0] == 3  # day 3 'HFNC' → high-flow nasal cannula code, applied
    assert at(m, "A01", "vasopressin", "analyte")["value"].sum() == 1

    e = cohort.events
    toci = at(e, "A01", "tocilizumab")
    assert toci["hours_from_infusion"].tolist() == [72.0, 96.0]
    assert set(toci["indication"]) == {"crs"}
    assert at(e, "B02", "corticosteroids")["indication"].tolist() == ["icans"]
    assert at(e, "A01", "icu_admission")["hours_from_infusion"].tolist() == [96.0]  # first only
    assert at(e, "A01", "crs_grade")["grade"].max() == 3
    assert at(e, "A01", "crs_max_grade").empty  # the timed course says it (no future maximum)
    assert at(e, "A01", "crs_onset")["hours_from_infusion"].tolist() == [48.0]  # day 1, at end
    lost = at(e, "C03", "lost_to_follow_up")
    assert len(lost) == 1 and lost["hours_from_infusion"].isna().all()
    assert not e.loc[e["patient_id"] == "C03", "event"].isin(["crs_max_grade"]).any()
    assert "no CRS information: 1 patients → lost_to_follow_up" in result.stdout


def test_lab_export_with_calendar_dates(tmp_path):
    folder = EXAMPLES / "lab-export"
    out = tmp_path / "cohort"
    report = import_cohort(folder / "mapping.yaml", [folder], out)
    cohort = load_cohort(out)
    m = cohort.measurements
    hours = {(r.patient_id, r.analyte): r.hours_from_infusion for r in m.itertuples()}
    assert hours[("L1", "crp")] == pytest.approx(-(2 + 20 / 60))  # 21:40 the evening before
    assert hours[("L1", "ferritin")] == 24.0  # a date without time: end of the infusion day
    assert hours[("L1", "platelets")] == 30.25  # date-time: exact
    assert hours[("L2", "crp")] == -6.5  # infusion 14:30, drawn 08:00 the same day
    assert hours[("L2", "platelets")] == 33.5  # day 1 known at its end, from 14:30
    il6 = at(m, "L1", "il6", "analyte").iloc[0]
    assert (il6["value"], il6["qualifier"]) == (5000.0, ">")
    written = pd.read_csv(out / "measurements.csv")
    assert set(written["unit"]) >= {"µg/L", "10^3/µL", "IU/L", "10^9/L"}  # hospital spellings
    e = cohort.events
    assert at(e, "L1", "corticosteroids")["indication"].tolist() == ["icans"]
    assert "date: whole days known at end of day, date-times exact" in report.render()
    for name in ("patients", "measurements", "events"):
        assert "2024" not in (out / f"{name}.csv").read_text(encoding="utf-8")  # no dates written


# --- time placement -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("placement", "expected", "said"),
    [
        (None, [0.0, 24.0, 36.0], "whole days known at end of day"),
        ("start_of_day", [-24.0, 0.0, 36.0], "whole days known at start of day"),
        (8, [-16.0, 8.0, 36.0], "whole days known at hour 8 of the day"),
        ("exact", [-24.0, 0.0, 36.0], "days, exact"),
    ],
)
def test_day_granular_placement_is_declared_and_reported(tmp_path, placement, expected, said):
    write(tmp_path / "x" / "p.csv", "id,site\nP1,A")
    write(tmp_path / "x" / "labs.csv", "id,day,crp\nP1,-1,3\nP1,0,4\nP1,1.5,5")
    time: dict = {"column": "day", "unit": "days"}
    if placement is not None:
        time["placement"] = placement
    mapping = {
        "sources": [
            {"file": "p.csv", "kind": "patients", "id_column": "id", "columns": {"center": "site"}},
            {
                "file": "labs.csv",
                "kind": "wide_measurements",
                "id_column": "id",
                "time": time,
                "measurements": [{"column": "crp", "analyte": "crp", "unit": "mg/L"}],
            },
        ]
    }
    report = import_cohort(dump(tmp_path / "m.yaml", mapping), [tmp_path / "x"], tmp_path / "c")
    hours = load_cohort(tmp_path / "c").measurements["hours_from_infusion"].tolist()
    assert hours == expected  # the fractional day 1.5 is exact whatever the placement
    assert said in report.render()


def test_placement_does_not_apply_to_hours(tmp_path, cli):
    mapping = example_mapping("patient-day")
    mapping["sources"][1]["time"] = {"column": "Day", "unit": "hours", "placement": "end_of_day"}
    path = dump(tmp_path / "m.yaml", mapping)
    result = cli("cohort", "import", "--mapping", path, "--out", tmp_path / "c", EXAMPLES)
    assert result.exit_code == 2
    assert "sources[1].time: placement applies to days and dates; hours are exact" in result.stderr
    assert "Traceback" not in result.stderr


# --- §3: same-time conflicting grades ------------------------------------------------------------
def _grades_extract(tmp_path: Path, rows: str) -> Path:
    write(tmp_path / "x" / "p.csv", "id,site\nP1,A\nP2,A")
    write(tmp_path / "x" / "days.csv", "id,day,grade\n" + rows)
    return tmp_path / "x"


def _grades_mapping(**top: object) -> dict:
    return {
        **top,
        "sources": [
            {"file": "p.csv", "kind": "patients", "id_column": "id", "columns": {"center": "site"}},
            {
                "file": "days.csv",
                "kind": "wide_measurements",
                "id_column": "id",
                "time": {"column": "day", "unit": "days"},
                "crs_grade": "grade",
            },
        ],
    }


def test_same_time_conflicting_crs_grades_are_an_error_naming_rows_and_column(tmp_path, cli):
    src = _grades_extract(tmp_path, "P1,1,1\nP1,2,2\nP1,2,3\nP2,1,0")
    path = dump(tmp_path / "m.yaml", _grades_mapping())
    result = cli("cohort", "import", "--mapping", path, "--out", tmp_path / "c", src)
    assert result.exit_code == 2
    assert (
        "conflicting CRS grades for one patient at the same time: days.csv row 3, column C "
        "('grade') vs days.csv row 4, column C ('grade') "
        "(set grade_conflicts: max to keep the maximum)"
    ) in result.stderr
    assert "grade 2" not in result.stderr and "grade 3" not in result.stderr  # cells: not shown
    assert "P1" not in result.stderr and not (tmp_path / "c").exists()


def test_same_time_conflicting_grades_keep_the_maximum_when_declared(tmp_path):
    src = _grades_extract(tmp_path, "P1,1,1\nP1,2,3\nP1,2,2\nP2,1,0")
    path = dump(tmp_path / "m.yaml", _grades_mapping(grade_conflicts="max"))
    report = import_cohort(path, [src], tmp_path / "c")
    e = load_cohort(tmp_path / "c").events
    assert at(e, "P1", "crs_grade")["grade"].tolist() == [3]  # never the last row's 2
    text = report.render()
    assert "conflicting grades at one time: 1" in text
    assert "dropped 1: conflicting grades at one time: lower grade dropped" in text


def test_same_time_conflicting_event_grades_from_long_events(tmp_path):
    write(tmp_path / "x" / "p.csv", "id,site\nP1,A")
    write(tmp_path / "x" / "ev.csv", "id,h,what,g\nP1,30,crs_grade,2\nP1,30,crs_grade,3")
    mapping = {
        "sources": [
            {"file": "p.csv", "kind": "patients", "id_column": "id", "columns": {"center": "site"}},
            {
                "file": "ev.csv",
                "kind": "long_events",
                "id_column": "id",
                "time": {"column": "h", "unit": "hours"},
                "event": "what",
                "grade": "g",
            },
        ]
    }
    with pytest.raises(CrsRiskError, match="conflicting event grades for one patient") as info:
        import_cohort(dump(tmp_path / "m.yaml", mapping), [tmp_path / "x"], tmp_path / "c")
    assert "ev.csv row 2, column C ('what') vs ev.csv row 3" in str(info.value)
    mapping["grade_conflicts"] = "max"
    report = import_cohort(dump(tmp_path / "m.yaml", mapping), [tmp_path / "x"], tmp_path / "c")
    assert load_cohort(tmp_path / "c").events["grade"].tolist() == [3]
    assert report.sources[1].grade_conflicts == 1 and report.n_events == 1


# --- §7: patient-day tables, value maps, units, row events ---------------------------------------
def test_conflicting_patient_repeats_name_file_rows_and_column(tmp_path, cli):
    data = (EXAMPLES / "patient-day" / "patient_days.csv").read_text(encoding="utf-8")
    lines = data.splitlines()
    lines[3] = lines[3].replace("Female,9,31.5", "Female,10,31.5")  # A01's age on day 1
    write(tmp_path / "x" / "patient_days.csv", "\n".join(lines))
    path = dump(tmp_path / "m.yaml", example_mapping("patient-day"))
    result = cli("cohort", "import", "--mapping", path, "--out", tmp_path / "c", tmp_path / "x")
    assert result.exit_code == 2
    assert (
        "patient_days.csv rows 2 and 4, column C ('Age'): conflicting values for one patient in "
        "a repeated patient column"
    ) in result.stderr
    assert "A01" not in result.stderr

    mapping = example_mapping("patient-day")
    del mapping["sources"][0]["rows"]
    result = cli("cohort", "import", "--mapping", dump(tmp_path / "m.yaml", mapping), "--out",
                 tmp_path / "c", EXAMPLES / "patient-day")  # fmt: skip
    assert result.exit_code == 2 and "a patient-day table needs rows: repeated" in result.stderr


def test_value_map_on_a_measurement_must_cover_every_value(tmp_path):
    data = (EXAMPLES / "patient-day" / "patient_days.csv").read_text(encoding="utf-8")
    write(tmp_path / "x" / "patient_days.csv", data.replace(",HFNC,", ",Venturi,"))
    path = dump(tmp_path / "m.yaml", example_mapping("patient-day"))
    with pytest.raises(CrsRiskError) as info:
        import_cohort(path, [tmp_path / "x"], tmp_path / "c")
    assert (
        "patient_days.csv row 6, column J ('O2'): value not in the value map (ra, nc, hfnc, "
        "mask, cpap, bipap, mv); the cell holds text"
    ) in str(info.value)
    assert "Venturi" not in str(info.value)


def test_bad_unit_in_a_per_row_unit_column(tmp_path):
    data = (EXAMPLES / "patient-day" / "patient_days.csv").read_text(encoding="utf-8")
    write(tmp_path / "x" / "patient_days.csv", data.replace("12.5,mg/dL", "12.5,mg/dx"))
    path = dump(tmp_path / "m.yaml", example_mapping("patient-day"))
    with pytest.raises(CrsRiskError) as info:
        import_cohort(path, [tmp_path / "x"], tmp_path / "c")
    assert (
        "patient_days.csv column I ('CRP unit'): unit not accepted for crp in 1 row "
        "(first at row 5) (accepted: mg/L, mg/dL, µg/mL)"
    ) in str(info.value)
    assert "mg/dx" not in str(info.value)


def test_row_event_indication_column_is_checked(tmp_path):
    mapping = example_mapping("patient-day")
    mapping["sources"][1]["events"][1]["indication"] = "Steroid reason"  # no value map
    path = dump(tmp_path / "m.yaml", mapping)
    import_cohort(path, [EXAMPLES / "patient-day"], tmp_path / "c")  # CRS/ICANS: any case
    e = load_cohort(tmp_path / "c").events
    assert sorted(e["indication"].dropna()) == ["crs", "crs", "crs", "crs", "icans"]

    data = (EXAMPLES / "patient-day" / "patient_days.csv").read_text(encoding="utf-8")
    write(tmp_path / "x" / "patient_days.csv", data.replace(",ICANS,", ",Neuro,"))
    with pytest.raises(CrsRiskError) as info:
        import_cohort(path, [tmp_path / "x"], tmp_path / "d")
    assert (
        "patient_days.csv row 13, column P ('Steroid reason'): indication is not one of "
        "crs, icans, other; map it with values"
    ) in str(info.value)
    assert "Neuro" not in str(info.value)


def test_indication_only_for_drug_events(tmp_path, cli):
    mapping = example_mapping("patient-day")
    mapping["sources"][1]["events"][2]["indication"] = "crs"
    path = dump(tmp_path / "m.yaml", mapping)
    result = cli("cohort", "import", "--mapping", path, "--out", tmp_path / "c", EXAMPLES)
    assert result.exit_code == 2
    assert "sources[1].events[2]: indication is for drug events" in result.stderr


def test_no_crs_record_needs_a_source_that_records_crs(tmp_path, cli):
    mapping = {
        "no_crs_record": "lost_to_follow_up",
        "sources": [{"file": "p.csv", "kind": "patients", "id_column": "id"}],
    }
    path = dump(tmp_path / "m.yaml", mapping)
    result = cli("cohort", "import", "--mapping", path, "--out", tmp_path / "c", tmp_path)
    assert result.exit_code == 2
    assert "no_crs_record: no source records CRS" in result.stderr


# --- issue 17 §4: imputed constants and assay limits --------------------------------------------
def test_imputed_constants_and_assay_limits_are_declared_in_the_mapping(tmp_path):
    write(tmp_path / "x" / "p.csv", "id,site\nP1,A\nP2,A")
    write(
        tmp_path / "x" / "labs.csv",
        "id,day,il18,il6,ferritin\nP1,1,5001,1.5,-99\nP1,2,870,40,500\nP2,1,5001,1.5,-99",
    )
    mapping = {
        "sources": [
            {"file": "p.csv", "kind": "patients", "id_column": "id", "columns": {"center": "site"}},
            {
                "file": "labs.csv",
                "kind": "wide_measurements",
                "id_column": "id",
                "time": {"column": "day", "unit": "days"},
                "measurements": [
                    {"match": "(?P<analyte>il18|il6)", "unit": "pg/mL"},
                    {"column": "ferritin", "analyte": "ferritin", "unit": "ng/mL"},
                ],
                "analyte_values": {
                    "IL-18": {"ceiling": 5001},
                    "il6": {"floor": 1.5},
                    "ferritin": {"missing": [-99]},
                },
            },
        ]
    }
    report = import_cohort(dump(tmp_path / "m.yaml", mapping), [tmp_path / "x"], tmp_path / "c")
    m = load_cohort(tmp_path / "c").measurements
    q = {(r.patient_id, r.analyte, r.value): r.qualifier for r in m.itertuples()}
    assert q[("P1", "il18", 5001.0)] == ">" and pd.isna(q[("P1", "il18", 870.0)])
    assert q[("P1", "il6", 1.5)] == "<" and pd.isna(q[("P1", "il6", 40.0)])
    assert at(m, "P1", "ferritin", "analyte")["value"].tolist() == [500.0]
    assert "dropped 2: ferritin: imputed constant = missing" in report.render()


def test_analyte_values_are_in_the_canonical_unit_and_unmatched_ones_are_reported(tmp_path):
    """The profile suggests a ceiling in the analyte's canonical unit (CRP 300 mg/L); a source in
    mg/dL writes it as 30: the declared value is compared after conversion (float noise
    tolerated: 980 mg/dL fibrinogen = 9.800000000000001 g/L), and a declared value that matches
    nothing is listed in the report, not an error."""
    write(tmp_path / "x" / "p.csv", "id,site\nP1,A\nP2,A")
    write(
        tmp_path / "x" / "labs.csv",
        "id,day,crp,fib,il6\nP1,1,30,980,12\nP1,2,0.1,9.8,-99\nP2,1,30,400,8\nP2,2,-99,980,30",
    )
    mapping = {
        "sources": [
            {"file": "p.csv", "kind": "patients", "id_column": "id", "columns": {"center": "site"}},
            {
                "file": "labs.csv",
                "kind": "wide_measurements",
                "id_column": "id",
                "time": {"column": "day", "unit": "days"},
                "measurements": [
                    {"column": "crp", "analyte": "crp", "unit": "mg/dL"},
                    {"column": "fib", "analyte": "fibrinogen", "unit": "mg/dL"},
                    {"column": "il6", "analyte": "il6", "unit": "ng/mL"},
                ],
                "analyte_values": {
                    "crp": {"ceiling": 300, "floor": 1, "missing": [-990]},
                    "fibrinogen": {"ceiling": 9.8},
                    "il6": {"missing": [-99000, -99], "floor": 0.5},
                },
            },
        ]
    }
    report = import_cohort(dump(tmp_path / "m.yaml", mapping), [tmp_path / "x"], tmp_path / "c")
    m = load_cohort(tmp_path / "c").measurements
    q = {(r.patient_id, r.analyte, r.hours_from_infusion): r.qualifier for r in m.itertuples()}
    assert q[("P1", "crp", 48.0)] == ">" and q[("P2", "crp", 48.0)] == ">"  # 30 mg/dL = 300 mg/L
    assert q[("P1", "crp", 72.0)] == "<"  # 0.1 mg/dL = 1 mg/L
    assert ("P2", "crp", 72.0) not in q  # -99 mg/dL = -990 mg/L: imputed constant
    assert q[("P1", "fibrinogen", 48.0)] == ">" and q[("P2", "fibrinogen", 72.0)] == ">"
    assert pd.isna(q[("P1", "fibrinogen", 72.0)])  # 9.8 mg/dL is 0.098 g/L, not the ceiling
    assert ("P1", "il6", 72.0) not in q and ("P2", "il6", 72.0) in q  # -99 ng/mL = -99000 pg/mL
    text = report.render()
    assert "dropped 1: crp: imputed constant = missing" in text
    assert "dropped 1: il6: imputed constant = missing" in text
    assert "analyte_values.il6.missing -99 pg/mL matched no value" in text
    assert "analyte_values.il6.floor 0.5 pg/mL matched no value" in text
    assert "analyte_values.crp" not in text and "analyte_values.fibrinogen" not in text
    assert "analyte_values matching no value: 2" in text


def _dated_extract(tmp_path: Path, analyte_values: dict, infusion: bool = True) -> dict:
    write(tmp_path / "x" / "p.csv", "id,site,infused\nP1,A,2021-06-25\nP2,A,2021-07-10")
    write(
        tmp_path / "x" / "labs.csv",
        "id,day,crp,il6\nP1,2,3,10\nP1,5,2,11\nP1,6,15,12\nP2,1,40,13",
    )
    mapping: dict = {
        "sources": [
            {"name": "patients", "file": "p.csv", "kind": "patients", "id_column": "id",
             "columns": {"center": "site"}},
            {
                "file": "labs.csv",
                "kind": "wide_measurements",
                "id_column": "id",
                "time": {"column": "day", "unit": "days"},
                "measurements": [
                    {"column": "crp", "analyte": "crp", "unit": "mg/L"},
                    {"column": "il6", "analyte": "il6", "unit": "pg/mL"},
                ],
                "analyte_values": analyte_values,
            },
        ]
    }  # fmt: skip
    if infusion:
        mapping["infusion"] = {"source": "patients", "column": "infused"}
    return mapping


def test_units_before_a_date_read_the_earlier_rows_in_their_unit(tmp_path, cli):
    """A unit that changed part-way (the profile's unit_mix flag) is fixed in the mapping: the
    rows dated before the change (infusion date + time) are read in the earlier unit."""
    mapping = _dated_extract(
        tmp_path,
        {"crp": {"units_before": {"2021-07-01": "mg/dL"}}, "il6": {"units_before": {
            "2020-01-01": "ng/mL"}}},
    )  # fmt: skip
    report = import_cohort(dump(tmp_path / "m.yaml", mapping), [tmp_path / "x"], tmp_path / "c")
    m = load_cohort(tmp_path / "c").measurements
    crp = {
        (r.patient_id, r.hours_from_infusion): r.value
        for r in m[m["analyte"] == "crp"].itertuples()
    }
    # P1 infused 25 June: day 2 and day 5 (30 June, known at its end) in mg/dL, day 6 in mg/L
    assert crp == {("P1", 72.0): 30.0, ("P1", 144.0): 20.0, ("P1", 168.0): 15.0, ("P2", 48.0): 40.0}
    assert at(m, "P1", "il6", "analyte")["value"].tolist() == [10.0, 11.0, 12.0]
    text = report.render()
    assert "crp: 2 rows dated before 2021-07-01 read in mg/dL (units_before)" in text
    assert "analyte_values.il6.units_before 2020-01-01 matched no row" in text

    bad = [
        (_dated_extract(tmp_path, {"crp": {"units_before": {"2021-07-01": "mg/dL"}}}, False),
         "analyte_values.crp.units_before dates each row from the patient's infusion date"),
        (_dated_extract(tmp_path, {"crp": {"units_before": {"2021-07-01": "mmol/L"}}}),
         "crp.units_before: unit 'mmol/L' (before 2021-07-01) is not accepted for crp"),
        (_dated_extract(tmp_path, {"crp": {"units_before": {"July 2021": "mg/dL"}}}),
         "'July 2021' is not a date (write it as 2021-07-01)"),
    ]  # fmt: skip
    for n, (broken, message) in enumerate(bad):
        path = dump(tmp_path / f"bad{n}.yaml", broken)
        result = cli("cohort", "import", "--mapping", path, "--out", tmp_path / "d", tmp_path / "x")
        assert result.exit_code == 2 and message in result.stderr, result.stderr


def test_analyte_values_name_a_known_analyte(tmp_path, cli):
    mapping = example_mapping("patient-day")
    mapping["sources"][1]["analyte_values"] = {"zinc": {"missing": [0]}}
    path = dump(tmp_path / "m.yaml", mapping)
    result = cli("cohort", "import", "--mapping", path, "--out", tmp_path / "c", EXAMPLES)
    assert result.exit_code == 2
    assert "sources[1].analyte_values: Value error, unknown analyte 'zinc'" in result.stderr or (
        "sources[1].analyte_values: unknown analyte 'zinc'" in result.stderr
    )


# --- privacy and robustness ----------------------------------------------------------------------
def test_a_shifted_column_never_prints_patient_ids(tmp_path):
    write(tmp_path / "x" / "p.csv", "id,site,age\nMRN-77,A,MRN-77\nMRN-78,A,7")
    write(tmp_path / "x" / "labs.csv", "id,day,crp\nMRN-77,1,MRN-78")
    mapping = {
        "sources": [
            {
                "file": "p.csv",
                "kind": "patients",
                "id_column": "id",
                "columns": {"center": "site", "age_years": "age"},
            },
            {
                "file": "labs.csv",
                "kind": "wide_measurements",
                "id_column": "id",
                "time": {"column": "day", "unit": "days"},
                "measurements": [{"column": "crp", "analyte": "crp", "unit": "mg/L"}],
            },
        ]
    }
    with pytest.raises(CrsRiskError) as info:
        import_cohort(dump(tmp_path / "m.yaml", mapping), [tmp_path / "x"], tmp_path / "c")
    message = str(info.value)
    assert "MRN" not in message
    assert (
        "p.csv row 2, column C ('age'): age_years: value is not a number; the cell equals a "
        "patient id" in message
    )
    assert (
        "labs.csv row 2, column C ('crp'): value is not a number; the cell equals a patient id"
        in message
    )


def test_braces_in_headers_and_templates_never_raise_a_traceback(tmp_path, cli):
    write(tmp_path / "x" / "p.csv", "id,site\nP1,A")
    write(tmp_path / "x" / "w.csv", "id,{Day 1} IL-6 {pg/mL},{Day 1} date\nP1,12,1.25")
    rule = {
        "match": r"\{Day (?P<day>\d+)\} (?P<analyte>IL-6) \{(?P<unit>[^}]+)\}",
        "time": {"column": "{Day {day}} date", "unit": "days"},  # other braces: plain text
    }
    mapping = {
        "sources": [
            {"file": "p.csv", "kind": "patients", "id_column": "id", "columns": {"center": "site"}},
            {"file": "w.csv", "kind": "patient_measurements", "id_column": "id",
             "measurements": [rule]},
        ]
    }  # fmt: skip
    report = import_cohort(dump(tmp_path / "m.yaml", mapping), [tmp_path / "x"], tmp_path / "c")
    m = load_cohort(tmp_path / "c").measurements
    assert m["hours_from_infusion"].tolist() == [30.0] and report.n_measurements == 1

    rule["time"] = {"column": "{Day {nominal}} date", "unit": "days"}
    path = dump(tmp_path / "m.yaml", mapping)
    result = cli("cohort", "import", "--mapping", path, "--out", tmp_path / "d", tmp_path / "x")
    assert result.exit_code == 2 and "Traceback" not in result.stderr
    assert "time template names group 'nominal' that match does not define" in result.stderr


def test_common_lab_unit_spellings(tmp_path):
    rows = [
        ("ldh", "UI/L"), ("platelets", "G/L"), ("platelets", "/mm3"), ("platelets", "K/µL"),
        ("ferritin", "mcg/L"), ("platelets", "x10^9/L"), ("platelets", "K/uL"),
        ("platelets", "x10E9/L"), ("platelets", "10*3/uL"), ("platelets", "thou/uL"),
    ]  # fmt: skip
    body = "\n".join(f"P1,{h},{a},100,{u}" for h, (a, u) in enumerate(rows))
    write(tmp_path / "x" / "p.csv", "id,site\nP1,A")
    write(tmp_path / "x" / "labs.csv", "id,h,test,value,unit\n" + body)
    mapping = {
        "sources": [
            {"file": "p.csv", "kind": "patients", "id_column": "id", "columns": {"center": "site"}},
            {
                "file": "labs.csv",
                "kind": "long_measurements",
                "id_column": "id",
                "time": {"column": "h", "unit": "hours"},
                "analyte": "test",
                "value": "value",
                "unit_column": "unit",
            },
        ]
    }
    import_cohort(dump(tmp_path / "m.yaml", mapping), [tmp_path / "x"], tmp_path / "c")
    m = load_cohort(tmp_path / "c").measurements
    platelets = m[m["analyte"] == "platelets"].set_index("hours_from_infusion")["value"]
    assert platelets.loc[2.0] == pytest.approx(0.1)  # 100 /mm3 = 100 /µL = 0.1 10^9/L
    assert platelets.drop(2.0).eq(100.0).all()  # every other spelling is 10^9/L
    assert not math.isnan(m.loc[m["analyte"] == "ldh", "value"].iloc[0])
