"""``crs-risk cohort import``: every source kind on small real files, bad mappings and bad cells,
and the real car22 cohort end to end (skipped when ../shared/data/car22 is absent)."""

from __future__ import annotations

import hashlib
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from openpyxl import Workbook

from features.errors import CrsRiskError
from features.importer import (
    ImportReport,
    column_letter,
    convert,
    import_cohort,
    letter_index,
    parse_number,
    read_source,
)
from features.io import load_cohort, validate_folder
from features.mapping import parse_mapping

REPO = Path(__file__).resolve().parents[2]
CAR22_MAPPING = REPO / "experiments" / "mappings" / "car22.yaml"
YES_NO = {0: False, 1: True}


# --- small extracts ---------------------------------------------------------------------------
def write(path: Path, text: str) -> Path:
    path.write_text(text.strip() + "\n", encoding="utf-8")
    return path


def dump(tmp_path: Path, mapping: dict, name: str = "mapping.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(mapping, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def extract(tmp_path: Path) -> Path:
    """A small extract in every shape the importer reads."""
    src = tmp_path / "extract"
    src.mkdir()
    write(
        src / "patients.csv",
        """
Patient,Centre,Sex,Age (y),Toci,Max CRS,CRS day
P1,A,1,10,1,3,2
P2,A,2,7.5,0,0,
P3,B,2,NR,,1,1.5
""",
    )
    write(
        src / "labs.csv",
        """
patient,day,test,result,units
P1,-2,CRP,1.2,mg/dL
P1,0,IL-6,<1.5,pg/mL
P1,1,IL-6,,pg/mL
P1,1,Sodium,140,mmol/L
P2,0,Ferritin,NR,ng/mL
P9,0,CRP,3,mg/L
P2,0.5,CRP,30,mg/L
P1,-2,CRP,1.2,mg/dL

P3,,CRP,4,mg/L
""",
    )
    write(
        src / "flowsheet.csv",
        """
patient,hour,Temp (C),CRP (mg/L),CRS grade
P1,0,37.0,5,0
P1,12,38.5,20,1
P1,30,39.0,80,3
P1,60,37.5,40,1
P1,90,36.9,,0
P2,0,36.8,2,0
P2,24,37.0,3,0
P3,6,38.2,,
""",
    )
    write(
        src / "events.csv",
        """
patient,hours,what,grade
P1,20,Toci,
P1,26,Siltux,
P2,,Toci,
P3,40,Other,
P3,50,ICANS,2
""",
    )
    # A workbook with two header rows: time windows (merged cells) over analyte columns, each
    # followed by the exact draw day.
    wb = Workbook()
    ws = wb.active
    ws.title = "Panel"
    ws.append(["ID", "Day 0", None, "Day 7", None])
    ws.append([None, "IL-6 (pg/mL)", "true day", "IL-6 (pg/mL)", "true day"])
    ws.merge_cells("B1:C1")
    ws.merge_cells("D1:E1")
    ws.append(["P1", 12.5, -0.25, 300, 6.5])
    ws.append(["P2", 4, None, 7, None])
    ws.append(["P3", "n.d.", 0, None, None])
    ws.append([None, None, None, None, None])
    wb.save(src / "panel.xlsx")
    return src


def patients_source(**extra: object) -> dict:
    return {
        "name": "clinic",
        "file": "patients.csv",
        "kind": "patients",
        "id_column": "Patient",
        "na_values": ["NR"],
        "constants": {"product": "tisagenlecleucel"},
        "columns": {
            "center": "Centre",
            "sex": {"header": "Sex", "values": {1: "M", 2: "F"}},
            "age_years": "Age (y)",
        },
        **extra,
    }


LONG = {
    "file": "labs.csv",
    "kind": "long_measurements",
    "id_column": "patient",
    "na_values": ["NR"],
    "time": {"column": "day", "unit": "days"},
    "analyte": "test",
    "value": "result",
    "unit_column": "units",
    "analytes": {"Sodium": "skip"},
}
WIDE = {
    "file": "flowsheet.csv",
    "kind": "wide_measurements",
    "id_column": "patient",
    "time": {"column": "hour", "unit": "hours"},
    "measurements": [
        {"column": "Temp (C)", "analyte": "temperature", "unit": "°C"},
        {"match": r"(?P<analyte>CRP) \((?P<unit>[^)]+)\)"},
    ],
    "crs_grade": "CRS grade",
}
PANEL = {
    "file": "panel.xlsx",
    "kind": "patient_measurements",
    "sheet": "Panel",
    "header_rows": 2,
    "id_column": {"letter": "A"},
    "na_values": ["n.d."],
    "measurements": [
        {
            "match": r"Day (?P<day>\d+) / (?P<analyte>IL-6) \((?P<unit>[^)]+)\)",
            "time": {"column": "Day {day} / true day", "unit": "days", "fallback": "{day}"},
        }
    ],
}
EVENTS = {
    "file": "events.csv",
    "kind": "long_events",
    "id_column": "patient",
    "time": {"column": "hours", "unit": "hours"},
    "event": {
        "header": "what",
        "values": {
            "Toci": "tocilizumab",
            "Siltux": "siltuximab",
            "ICANS": "icans",
            "Other": None,
        },
    },
    "grade": "grade",
}


def run(tmp_path: Path, src: Path, sources: list[dict], **top: object) -> tuple[ImportReport, Path]:
    out = tmp_path / "cohort"
    report = import_cohort(dump(tmp_path, {**top, "sources": sources}), [src], out)
    return report, out


def rows(frame: pd.DataFrame, pid: str) -> pd.DataFrame:
    return frame[frame["patient_id"] == pid].reset_index(drop=True)


# --- source kinds -----------------------------------------------------------------------------
def test_long_measurements(tmp_path, extract):
    report, out = run(tmp_path, extract, [patients_source(), LONG])
    cohort = load_cohort(out)
    m = cohort.measurements
    assert len(m) == 3
    crp = rows(m, "P1").query("analyte == 'crp'")
    assert crp["hours_from_infusion"].tolist() == [-24.0]
    assert crp["value"].tolist() == pytest.approx([12.0])  # 1.2 mg/dL → 12 mg/L on load
    il6 = rows(m, "P1").query("analyte == 'il6'").iloc[0]
    # day-granular: known at the end of its day (day 0 → 24 h, day −2 → −24 h); a fractional
    # day is an exact time (0.5 → 12 h)
    assert (il6["hours_from_infusion"], il6["value"], il6["qualifier"]) == (24.0, 1.5, "<")
    assert rows(m, "P2")["hours_from_infusion"].tolist() == [12.0]
    assert "times: days: whole days known at end of day, fractional days exact" in report.render()

    text = report.render()
    long = text.split("- labs.csv")[1].split("\n- ")[0]
    for reason in (
        "dropped 1: empty = not measured",
        "dropped 1: analyte 'sodium' skipped (mapping says skip)",  # the mapping's entry
        "dropped 1: placeholder 'NR' = missing",
        "dropped 1: patient not in the patient table",
        "dropped 1: duplicate of an identical value",
        "dropped 1: time empty and no fallback",
        "dropped 1: empty row",
    ):
        assert reason in long, text
    assert "9 rows read" in long and "→ 3 measurements" in long
    assert "written: 3 patients, 3 measurements, 0 events" in text
    assert "P9" not in text and "P1" not in text  # no patient id in the report


def test_patients_values_constants_and_flags(tmp_path, extract):
    clinic = patients_source(
        events=[
            {"event": "tocilizumab", "flag": {"header": "Toci", "values": YES_NO}},
            {
                "event": "crs_max_grade",
                "grade": "Max CRS",
                "time": {"column": "CRS day", "unit": "days"},
            },
        ]
    )
    report, out = run(tmp_path, extract, [clinic])
    cohort = load_cohort(out)
    p = cohort.patients.set_index("patient_id")
    assert p["sex"].tolist() == ["M", "F", "F"]
    assert p["center"].tolist() == ["A", "A", "B"]
    assert set(p["product"]) == {"tisagenlecleucel"}
    assert p.loc["P2", "age_years"] == 7.5 and pd.isna(p.loc["P3", "age_years"])
    assert p["weight_kg"].isna().all()  # not in the extract: missing, never invented

    e = cohort.events
    toci = e[e["event"] == "tocilizumab"]
    assert toci["patient_id"].tolist() == ["P1"] and toci["hours_from_infusion"].isna().all()
    top = e[e["event"] == "crs_max_grade"].set_index("patient_id")
    assert top["grade"].to_dict() == {"P1": 3, "P2": 0, "P3": 1}
    assert top.loc["P1", "hours_from_infusion"] == 72.0  # day 2, known at its end
    assert top.loc["P3", "hours_from_infusion"] == 36.0  # day 1.5: exact
    assert math.isnan(top.loc["P2", "hours_from_infusion"])
    text = report.render()
    assert "age_years: placeholder 'NR' = missing" in text
    assert "tocilizumab: flag empty = not measured" in text


def test_per_patient_events_join_times_from_another_source(tmp_path, extract):
    write(
        extract / "outcomes.csv",
        """
id;astct;death day
P1;4;20
P2;0;
P3;2;
P4;3;1
""",
    )
    outcomes = {
        "file": "outcomes.csv",
        "kind": "per_patient_events",
        "delimiter": ";",
        "id_column": "id",
        "events": [
            {
                "event": "crs_max_grade",
                "grade": "astct",
                "time": {"source": "clinic", "column": "CRS day", "unit": "days"},
            },
            {"event": "death", "time": {"column": "death day", "unit": "days", "offset": 0.5}},
        ],
    }
    report, out = run(tmp_path, extract, [patients_source(), outcomes])
    e = load_cohort(out).events
    got = {
        (pid, ev): (int(g) if not pd.isna(g) else None, h)
        for pid, ev, g, h in e[["patient_id", "event", "grade", "hours_from_infusion"]]
        .fillna({"hours_from_infusion": -1.0})
        .itertuples(index=False)
    }
    assert got == {
        ("P1", "crs_max_grade"): (4, 72.0),  # grade from outcomes.csv, day 2 from patients.csv
        ("P2", "crs_max_grade"): (0, -1.0),  # no CRS day: unknown time
        ("P3", "crs_max_grade"): (2, 36.0),
        ("P1", "death"): (None, 492.0),  # (20 + 0.5) days: a fraction is exact
    }
    assert "dropped 2: patient not in the patient table" in report.render()


def test_wide_rows_with_crs_grade_derive_onset_course_and_maximum(tmp_path, extract):
    report, out = run(tmp_path, extract, [patients_source(), WIDE])
    cohort = load_cohort(out)
    m = cohort.measurements
    assert len(m[m["analyte"] == "temperature"]) == 8
    assert len(m[m["analyte"] == "crp"]) == 6
    e = cohort.events
    p1 = [
        (ev, h, int(g))
        for ev, h, g in rows(e, "P1")[["event", "hours_from_infusion", "grade"]].itertuples(
            index=False
        )
    ]
    # the timed course, without a crs_max_grade that would put the future maximum at onset
    assert sorted(p1, key=lambda r: (r[1], r[0])) == [
        ("crs_onset", 12.0, 1),
        ("crs_grade", 30.0, 3),
        ("crs_grade", 60.0, 1),
        ("crs_grade", 90.0, 0),
    ]
    p2 = rows(e, "P2")
    assert p2["event"].tolist() == ["crs_max_grade"] and p2["grade"].tolist() == [0]
    assert p2["hours_from_infusion"].isna().all()
    assert rows(e, "P3").empty  # grade never recorded: no CRS event is made up
    assert "CRS grade: empty = not measured" in report.render()


def test_wide_crs_events_can_be_restricted(tmp_path, extract):
    wide = {**WIDE, "crs_events": ["crs_max_grade"]}
    _, out = run(tmp_path, extract, [patients_source(), wide])
    e = load_cohort(out).events
    assert set(e["event"]) == {"crs_max_grade"}
    assert rows(e, "P1")[["hours_from_infusion", "grade"]].values.tolist() == [[12.0, 3]]


def test_multi_header_excel(tmp_path, extract):
    report, out = run(tmp_path, extract, [patients_source(), PANEL])
    m = load_cohort(out).measurements
    got = {
        (pid, h): v
        for pid, h, v in m[["patient_id", "hours_from_infusion", "value"]].itertuples(index=False)
    }
    assert got == {
        ("P1", -6.0): 12.5,  # exact draw day −0.25 (before infusion)
        ("P1", 156.0): 300.0,  # 6.5 days
        ("P2", 24.0): 4.0,  # true day empty → nominal day 0, known at its end
        ("P2", 192.0): 7.0,
    }
    text = report.render()
    assert "placeholder 'n.d.' = missing" in text
    assert "2 columns used" in text


def test_long_events(tmp_path, extract):
    report, out = run(tmp_path, extract, [patients_source(), EVENTS])
    e = load_cohort(out).events
    got = [
        (pid, ev, None if math.isnan(h) else h)
        for pid, ev, h in e[["patient_id", "event", "hours_from_infusion"]].itertuples(index=False)
    ]
    assert sorted(got, key=str) == sorted(
        [
            ("P1", "tocilizumab", 20.0),
            ("P1", "siltuximab", 26.0),
            ("P2", "tocilizumab", None),
            ("P3", "icans", 50.0),
        ],
        key=str,
    )
    assert "event: mapped to missing by the value map" in report.render()


def test_all_kinds_together_and_parquet(tmp_path, extract):
    out = tmp_path / "pq"
    mapping = dump(
        tmp_path, {"sources": [patients_source(), LONG, {**WIDE, "crs_events": []}, PANEL, EVENTS]}
    )
    report = import_cohort(mapping, [extract / "patients.csv", extract], out, fmt="parquet")
    assert sorted(p.name for p in out.iterdir()) == [
        "events.parquet",
        "manifest.json",
        "measurements.parquet",
        "patients.parquet",
    ]
    assert validate_folder(out).ok
    # provenance: an import names its mapping by digest and is never called synthetic
    from features.manifest import is_synthetic, read_manifest

    manifest = read_manifest(out)
    assert manifest is not None and manifest.source == "import" and not is_synthetic(out)
    assert manifest.mapping_digest == hashlib.sha256(mapping.read_bytes()).hexdigest()
    assert report.n_measurements == 3 + 14 + 4
    assert report.n_events == 4


# --- duplicates ---------------------------------------------------------------------------
def test_conflicting_duplicates_fail_unless_keep_first(tmp_path, extract):
    write(extract / "more.csv", "patient,day,test,result,units\nP1,-2,CRP,99,mg/L")
    more = {**LONG, "file": "more.csv", "analytes": {}}
    out = tmp_path / "cohort"
    mapping = dump(tmp_path, {"sources": [patients_source(), LONG, more]})
    with pytest.raises(CrsRiskError) as info:
        import_cohort(mapping, [extract], out)
    message = str(info.value)
    assert "conflicting measurements for the same patient, time and analyte" in message
    assert "labs.csv row 2, column D ('result') vs more.csv row 2, column D ('result')" in message
    assert not out.exists()

    mapping = dump(
        tmp_path, {"duplicates": "keep_first", "sources": [patients_source(), LONG, more]}
    )
    report = import_cohort(mapping, [extract], out)
    crp = load_cohort(out).measurements.query("patient_id == 'P1' and analyte == 'crp'")
    assert crp["value"].tolist() == pytest.approx([12.0])
    assert "conflicting duplicate dropped (duplicates: keep_first)" in report.render()


# --- bad mappings and bad cells: exit 2, one line per problem, nothing written ----------------
@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda s: s[1].update(colour="red"),
            ["mapping mapping.yaml: sources[1].colour: unknown key"],
        ),
        (
            lambda s: s[1].update(file="lab.csv"),
            ["mapping mapping.yaml: sources[1].file: 'lab.csv' not found among the sources"],
        ),
        (
            lambda s: (s[1].update(value="Results"), s[0]["columns"].update(sex="Gender")),
            [
                "sources[0].columns.sex: column 'Gender' not found in patients.csv",
                "sources[1].value: column 'Results' not found in labs.csv; did you mean 'result'?",
            ],
        ),
        (
            lambda s: s[1].update(unit_column=None, unit="mg/dx"),
            [
                "mapping mapping.yaml: sources[1].unit: 'mg/dx' is not accepted for crp, the "
                "analyte of 5 rows of labs.csv (first at row 2) (accepted: mg/L, mg/dL, µg/mL)",
                "sources[1].unit: 'mg/dx' is not accepted for il6, the analyte of 1 row of",
            ],
        ),
        (
            lambda s: s[1]["time"].update(unit="weeks"),
            ["sources[1].time.unit: Input should be 'days', 'hours' or 'date'; got 'weeks'"],
        ),
    ],
    ids=["unknown-key", "missing-file", "column-not-found", "bad-unit", "bad-time-unit"],
)
def test_bad_mapping_exits_2_and_writes_nothing(tmp_path, extract, cli, change, expected):
    sources = [patients_source(), {**LONG, "time": dict(LONG["time"])}]
    sources[0]["columns"] = dict(sources[0]["columns"])
    change(sources)
    sources[1] = {k: v for k, v in sources[1].items() if v is not None}
    out = tmp_path / "cohort"
    result = cli(
        "cohort", "import", "--mapping", dump(tmp_path, {"sources": sources}), "--out", out, extract
    )
    assert result.exit_code == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("error: ")
    for text in expected:
        assert sum(text in line for line in lines) == 1, result.stderr
    assert len(lines) == 1 + len(expected)
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_ambiguous_header_names_the_columns(tmp_path, extract):
    panel = {
        **PANEL,
        "measurements": [
            {
                "column": "IL-6 (pg/mL)",
                "analyte": "il6",
                "unit": "pg/mL",
                "time": {"value": 0, "unit": "days"},
            }
        ],
    }
    with pytest.raises(CrsRiskError) as info:
        run(tmp_path, extract, [patients_source(), panel])
    assert (
        "sources[1].measurements[0].column: column 'IL-6 (pg/mL)' matches 2 columns of "
        "panel.xlsx (B, D); give more of its header path (e.g. 'Day 0 / IL-6 (pg/mL)') or its "
        "letter"
    ) in str(info.value)
    panel["measurements"][0]["column"] = "Day 7 / IL-6 (pg/mL)"
    _, out = run(tmp_path, extract, [patients_source(), panel])
    assert load_cohort(out).measurements["value"].tolist() == [300.0, 7.0]


def test_cli_import_succeeds(tmp_path, extract, cli):
    mapping = dump(tmp_path, {"sources": [patients_source(), WIDE]})
    out = tmp_path / "cohort"
    result = cli(
        "cohort", "import", "--mapping", mapping, "--out", out, "--format", "parquet", extract
    )
    assert result.exit_code == 0, result.stderr
    assert "written: 3 patients, 14 measurements, 5 events" in result.stdout
    assert cli("cohort", "validate", out).exit_code == 0


def test_bad_cells_name_file_row_column_and_rule_never_the_cell(tmp_path, extract):
    write(
        extract / "labs.csv",
        """
patient,day,test,result,units
SECRET-1,0,CRP,high,mg/L
SECRET-1,0,IL-6,-5,pg/mL
SECRET-1,soon,IL-2,1,pg/mL
SECRET-1,1,Zinc,1,µmol/L
""",
    )
    write(extract / "patients.csv", "Patient,Centre\nSECRET-1,A\nSECRET-1,A")
    clinic = {
        "file": "patients.csv",
        "kind": "patients",
        "id_column": "Patient",
        "columns": {"center": "Centre"},
    }
    with pytest.raises(CrsRiskError) as info:
        import_cohort(dump(tmp_path, {"sources": [clinic, LONG]}), [extract], tmp_path / "out")
    message = str(info.value)
    lines = message.splitlines()
    assert lines[0].startswith("import with mapping mapping.yaml failed (5 problems; nothing")
    assert "patients.csv rows 2 and 3: the same patient id twice" in message
    assert (
        "labs.csv row 2, column D ('result'): value is not a number; the cell holds text; "
        "declare it " in message
    )
    assert (
        "labs.csv row 3, column D ('result'): value of il6 is outside the possible range "
        "[0, 1e+08] pg/mL; the value is below this range" in message
    )
    assert "labs.csv row 4, column B ('day'): time is not a number; the cell holds text" in message
    assert (
        "labs.csv, column C ('test'): unknown analyte in 1 row (first at row 5); map each under "
        "analytes" in message
    )
    for cell in ("SECRET", "high", "-5", "soon", "Zinc", "µmol/L"):
        assert cell not in message
    assert not (tmp_path / "out").exists()


def test_value_map_must_cover_every_value(tmp_path, extract):
    clinic = patients_source()
    clinic["columns"]["sex"] = {"header": "Sex", "values": {1: "M"}}
    with pytest.raises(
        CrsRiskError,
        match=r"patients\.csv row 4, column C \('Sex'\): value not in the value map \(1\); "
        r"the cell holds a number",
    ):
        import_cohort(dump(tmp_path, {"sources": [clinic]}), [extract], tmp_path / "out")


def test_flags_need_a_boolean(tmp_path, extract):
    clinic = patients_source(events=[{"event": "tocilizumab", "flag": "Toci"}])
    expected = "flag value is not a boolean; the cell holds a number; map it with values"
    with pytest.raises(CrsRiskError, match=expected):
        import_cohort(dump(tmp_path, {"sources": [clinic]}), [extract], tmp_path / "out")


def test_helpers():
    assert [column_letter(i) for i in (0, 25, 26, 628)] == ["A", "Z", "AA", "XE"]
    assert all(letter_index(column_letter(i)) == i for i in range(800))
    assert parse_number("<0.5", qualified=True) == (0.5, "<")
    assert parse_number(">= 5000", qualified=True) == (5000.0, ">")
    assert parse_number("<0.5") is None and parse_number("nan") is None
    assert parse_number(True) is None and parse_number(3) == (3.0, None)


def test_convert_without_writing(tmp_path, extract):
    mapping = parse_mapping({"sources": [patients_source(), WIDE]})
    patients, measurements, _events, reports = convert(mapping, [extract])
    assert patients["patient_id"].tolist() == ["P1", "P2", "P3"]
    assert list(measurements.columns) == [
        "patient_id",
        "hours_from_infusion",
        "analyte",
        "value",
        "unit",
        "qualifier",
    ]
    assert measurements["unit"].isin(["°C", "mg/L"]).all()
    assert [r.kind for r in reports] == ["patients", "wide_measurements"]


# --- the real car22 cohort --------------------------------------------------------------------
@pytest.fixture(scope="module")
def car22_import(tmp_path_factory):
    from tests.conftest import CAR22

    if not (CAR22 / "outcomes_id_key.csv").exists():
        pytest.skip(f"real car22 cohort not present at {CAR22}")
    from tests.conftest import run_cli

    out = tmp_path_factory.mktemp("car22") / "cohort"
    result = run_cli("cohort", "import", "--mapping", CAR22_MAPPING, "--out", out, CAR22)
    return result, out, CAR22


@pytest.mark.car22
def test_car22_import_is_a_valid_cohort(car22_import):
    result, out, _ = car22_import
    assert result.exit_code == 0, result.stderr
    assert validate_folder(out).ok
    cohort = load_cohort(out)
    assert cohort.n_patients == 59
    p = cohort.patients
    assert p["patient_id"].str.fullmatch(r"\d+").all()  # Randomized IDs, as text
    assert set(p["center"]) == {"NCI"} and set(p["product"]) == {"CD22-CAR"}
    assert p["age_years"].isna().all() and p["sex"].isna().all()  # not in the data
    assert not (cohort.measurements["analyte"] == "platelets").any()
    text = result.stdout
    assert "written: 59 patients" in text
    assert "placeholder 'Hemolyzed' = missing" in text
    assert "placeholder '---' = missing" in text


@pytest.mark.car22
def test_car22_outcomes_match_the_key(car22_import):
    _, out, car22 = car22_import
    cohort = load_cohort(out)
    key = pd.read_csv(car22 / "outcomes_id_key.csv", dtype={"Randomized ID": str})
    key = key.set_index("Randomized ID")
    e = cohort.events
    top = e[e["event"] == "crs_max_grade"].set_index("patient_id")
    assert len(top) == 59
    assert (top["grade"].astype(int) == key.loc[top.index, "Max Grade CRS_ASBMT"]).all()
    assert (top["grade"] >= 3).sum() == (key["Max Grade CRS_ASBMT"] >= 3).sum() == 12
    # timed at the workbook's CRS day (whole days), unknown for the patients without CRS
    timed = top["hours_from_infusion"].notna()
    assert (timed == (top["grade"] > 0)).all()
    assert (top.loc[timed, "hours_from_infusion"] % 24 == 0).all()
    assert top.loc[timed, "hours_from_infusion"].between(24, 14 * 24).all()
    for event, column in (("tocilizumab", "Toci"), ("corticosteroids", "Steroids")):
        flagged = set(e.loc[e["event"] == event, "patient_id"])
        assert flagged == set(key.index[key[column] == 1]), event
        assert e.loc[e["event"] == event, "hours_from_infusion"].isna().all()
    assert (e["event"] == "anakinra").sum() == 9
    assert not (e["event"] == "crs_onset").any()  # onset grade is not recorded in car22


@pytest.mark.car22
def test_car22_marrow_labs_and_cytokines(car22_import):
    _, out, car22 = car22_import
    cohort = load_cohort(out)
    p = cohort.patients.set_index("patient_id")
    raw = pd.read_excel(car22 / "clinical_data.xlsx", header=None, dtype=object)
    ids = raw.iloc[3:, 0].astype(int).astype(str).to_numpy()
    marrow = pd.to_numeric(raw.iloc[3:, 13], errors="coerce").to_numpy()
    assert np.allclose(p.loc[ids, "marrow_blasts_pct"].to_numpy(), marrow, equal_nan=True)
    assert p["marrow_blasts_pct"].notna().sum() == 57  # two '---'
    assert p["car_t_dose"].isin([0.3, 1.0, 3.0]).all()

    m = cohort.measurements
    counts = m.groupby("analyte")["patient_id"].agg(["size", "nunique"])
    cytokines = {
        "il6", "ifng", "il10", "il8", "il2", "il4", "il13", "il15", "il18", "il1b",
        "il12p70", "gmcsf", "tnfa", "mip1a",
    }  # fmt: skip
    assert cytokines | {"crp", "ferritin", "ldh"} == set(counts.index)
    assert (counts.loc[sorted(cytokines - {"il18"}), "nunique"] == 59).all()
    assert (counts.loc[sorted(cytokines - {"il18"}), "size"].between(900, 1000)).all()
    assert counts.loc["il18", "size"] > 300
    # five lab windows per patient at most, at the exact (fractional) draw day
    for lab in ("crp", "ferritin", "ldh"):
        assert 200 < counts.loc[lab, "size"] <= 5 * 59
    crp = m[m["analyte"] == "crp"]
    assert (crp["hours_from_infusion"] % 24 != 0).mean() > 0.9
    assert m["hours_from_infusion"].min() < 0  # some day-0 draws precede the infusion day

    # every value of the long cytokine table (daily samples) is imported on its day
    long = pd.read_csv(car22 / "cytokines_day_after_infusion.csv").dropna(
        subset=["cytokine_levels"]
    )
    long = long[~long["days"].isin([21, 28])]  # window samples: the csv uses the nominal day
    long = long.assign(
        patient_id=long["patient_id"].astype(str),
        hours_from_infusion=long["days"] * 24.0 + 24.0,  # a sample of day d is known at its end
        analyte=long["cytokines"].map(
            {"IL-6": "il6", "IFN-gamma": "ifng", "IL-10": "il10", "IL-8": "il8", "IL-2": "il2",
             "IL-4": "il4", "IL-13": "il13", "IL-15": "il15", "IL-18": "il18", "IL-1B": "il1b",
             "IL-12p70": "il12p70", "GM-CSF": "gmcsf", "TNF-alpha": "tnfa", "MIP-alpha": "mip1a"}
        ),
    )  # fmt: skip
    both = long.merge(m, on=["patient_id", "hours_from_infusion", "analyte"], how="left")
    assert both["value"].notna().all()
    assert np.allclose(both["value"], both["cytokine_levels"])


@pytest.mark.car22
def test_car22_long_table_imports_through_a_long_mapping(tmp_path, car22_dir):
    """The cytokine csv itself, as a long source (the 7 patients without CRS have no rows)."""
    mapping = {
        "sources": [
            {
                "file": "outcomes_id_key.csv",
                "kind": "patients",
                "id_column": "Randomized ID",
                "constants": {"center": "NCI", "product": "CD22-CAR"},
            },
            {
                "file": "cytokines_day_after_infusion.csv",
                "kind": "long_measurements",
                "id_column": "patient_id",
                "time": {"column": "days", "unit": "days"},
                "analyte": "cytokines",
                "value": "cytokine_levels",
                "unit": "pg/mL",
            },
        ]
    }
    report = import_cohort(dump(tmp_path, mapping), [car22_dir], tmp_path / "out")
    assert report.n_patients == 59
    assert report.n_measurements == 11037
    assert re.search(r"dropped 4649: empty = not measured", report.render())
    assert load_cohort(tmp_path / "out").measurements["patient_id"].nunique() == 52


def _workbook_counts(car22: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """From the raw workbook, independently of the mapping: per patient, the day-0 cytokine
    values per analyte, and the windowed labs drawn on a day before infusion (true date < 0)."""
    table = read_source(car22 / "clinical_data.xlsx", None, 3, None)
    ids = [str(int(v)) for v in table.cells[:, 0]]
    cytokines: dict[str, list[int]] = {}
    labs: dict[str, list[int]] = {}
    for j in range(table.n_columns):
        path = table.path_text(j)
        value = pd.to_numeric(pd.Series(table.cells[:, j]), errors="coerce").notna()
        day0 = re.fullmatch(r"CYTOKINES / Day 0 / (.+)", path)
        if day0:
            cytokines[day0.group(1).strip()] = value.astype(int).tolist()
        lab = re.fullmatch(r".*Timepoint / (CRP|Ferritin|LDH) \(.*\)", path)
        if lab:
            true_day = pd.to_numeric(pd.Series(table.cells[:, j + 1]), errors="coerce")
            before = (value & (true_day < 0)).astype(int)
            name = lab.group(1).lower()
            labs[name] = [
                a + b for a, b in zip(labs.get(name, [0] * len(ids)), before, strict=True)
            ]
    return pd.DataFrame(cytokines, index=ids), pd.DataFrame(labs, index=ids)


@pytest.mark.car22
def test_car22_landmark_tables_hold_only_values_known_by_then(car22_import):
    """Issue 11 §1 through the importer and features.build: the 0 h table holds no value of
    day 0 or later (only labs drawn before the infusion day), the 24 h table the day-0 cytokines
    but no day-1 value. With day-0 samples at the start of their day (the old placement) the 0 h
    table held 801 infusion-day cytokines and this test fails."""
    from features.build import build_features

    _, out, car22 = car22_import
    cohort = load_cohort(out)
    day0, labs_before = _workbook_counts(car22)
    names = {"IL-6": "il6", "IFN-gamma": "ifng", "IL-10": "il10", "IL-18": "il18"}
    at0 = build_features(cohort, "severe_crs", "0h")
    x0 = at0.X.set_index(at0.ids)
    for key in names.values():
        assert (x0[f"{key}_n"].fillna(0) == 0).all(), key  # cytokines start on day 0
    for lab in ("crp", "ferritin", "ldh"):
        expected = labs_before.loc[x0.index, lab]
        assert (x0[f"{lab}_n"].fillna(0).astype(int) == expected).all(), lab
    assert 0 < int(labs_before.to_numpy().sum()) < 20

    at24 = build_features(cohort, "severe_crs", "24h")
    x24 = at24.X.set_index(at24.ids)
    for name, key in names.items():
        if name in day0:
            expected = day0.loc[x24.index, name]
            assert (x24[f"{key}_n"].fillna(0).astype(int) == expected).all(), key
    assert x24["il6_n"].max() == 1  # one day-0 sample, nothing from day 1 (known at 48 h)
    assert (x24["il6_hours_since_first"].dropna() == 0).all()  # known at 24 h exactly


@pytest.mark.car22
def test_car22_il18_ceiling_is_a_limit_not_a_number(car22_import):
    _, out, _ = car22_import
    m = load_cohort(out).measurements
    il18 = m[m["analyte"] == "il18"]
    above = il18[il18["qualifier"] == ">"]
    assert len(above) == 14 and (above["value"] == 5001).all()
    assert il18.loc[il18["qualifier"].isna(), "value"].ne(5001).all()
