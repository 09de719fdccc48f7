"""The import mapping model: valid mappings load; bad ones name file, YAML path and rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from features.errors import CrsRiskError
from features.mapping import (
    LongMeasurementsSource,
    PatientsSource,
    load_mapping,
    parse_mapping,
    value_key,
)

REPO = Path(__file__).resolve().parents[2]

PATIENTS = {"file": "p.csv", "kind": "patients", "id_column": "id"}


def problems(data: object, name: str = "m.yaml") -> list[str]:
    with pytest.raises(CrsRiskError) as info:
        parse_mapping(data, name)
    lines = str(info.value).splitlines()
    assert lines[0].startswith(f"mapping {name}")
    return lines[1:]


def test_car22_mapping_loads():
    mapping = load_mapping(REPO / "experiments" / "mappings" / "car22.yaml")
    kinds = [s.kind for s in mapping.sources]
    assert kinds == ["patients", "per_patient_events", "patient_measurements"]
    clinical = mapping.sources[0]
    assert isinstance(clinical, PatientsSource)
    assert clinical.constants == {"center": "NCI", "product": "CD22-CAR"}
    assert clinical.columns["prior_hsct"].values == {"0": False, "1": True}
    assert mapping.na_values == ["---", "N/A", "Hemolyzed"]


def test_shorthands_and_value_keys():
    mapping = parse_mapping(
        {
            "sources": [
                {**PATIENTS, "columns": {"sex": {"letter": "c", "values": {1: "M", "2": "F"}}}},
                {
                    "file": "l.csv",
                    "kind": "long_measurements",
                    "id_column": {"position": 1},
                    "time": {"column": "day", "unit": "days"},
                    "analyte": "test",
                    "value": "result",
                    "unit_column": "units",
                    "analytes": {"Sodium": "skip", "C-RP": "crp"},
                },
            ]
        }
    )
    sex = mapping.sources[0].columns["sex"]
    assert sex.letter == "C" and sex.values == {"1": "M", "2": "F"}
    long = mapping.sources[1]
    assert isinstance(long, LongMeasurementsSource)
    assert long.analyte.header == "test" and long.id_column.position == 1
    assert long.analytes == {"sodium": "skip", "c-rp": "crp"}
    assert value_key(1) == value_key(1.0) == value_key(" 1 ") == "1"
    assert value_key("Yes") == "yes" and value_key(True) == "true"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"sources": [{**PATIENTS, "colums": {}}]}, "sources[0].colums: unknown key"),
        ({"sources": [{**PATIENTS, "kind": "patient"}]}, "sources[0].kind: unknown kind 'patient'"),
        (
            {"sources": [{**PATIENTS, "columns": {"age": "Age"}}]},
            "sources[0]: 'age' is not a patient field",
        ),
        (
            {"sources": [{**PATIENTS, "id_column": {"letter": "A1"}}]},
            "sources[0].id_column.letter: 'A1' is not a spreadsheet column letter",
        ),
        (
            {"sources": [{**PATIENTS, "id_column": {"letter": "A", "position": 1}}]},
            "sources[0].id_column: give exactly one of header, letter or position",
        ),
        (
            {
                "sources": [
                    PATIENTS,
                    {
                        "file": "l.csv",
                        "kind": "long_measurements",
                        "id_column": "id",
                        "time": {"column": "t", "unit": "weeks"},
                        "analyte": "a",
                        "value": "v",
                        "unit": "mg/L",
                    },
                ]
            },
            "sources[1].time.unit: Input should be 'days', 'hours' or 'date'; got 'weeks'",
        ),
        (
            {
                "sources": [
                    PATIENTS,
                    {
                        "file": "l.csv",
                        "kind": "long_measurements",
                        "id_column": "id",
                        "time": {"column": "t", "unit": "days", "placement": "noon"},
                        "analyte": "a",
                        "value": "v",
                        "unit": "mg/L",
                    },
                ]
            },
            "sources[1].time.placement: Input should be 'end_of_day', 'start_of_day' or 'exact'; "
            "got 'noon'",
        ),
        (
            {
                "sources": [
                    {**PATIENTS, "events": [{"event": "tocilizumab", "grade": 2}]},
                ]
            },
            "sources[0].events[0]: tocilizumab takes no grade",
        ),
        (
            {"sources": [{**PATIENTS, "events": [{"event": "crs_max_grade", "flag": "x"}]}]},
            "sources[0].events[0]: crs_max_grade needs a grade",
        ),
        (
            {"sources": [{**PATIENTS, "events": [{"event": "toci", "flag": "x"}]}]},
            "sources[0].events[0].event: unknown event 'toci'",
        ),
        (
            {
                "sources": [
                    PATIENTS,
                    {
                        "file": "w.xlsx",
                        "kind": "patient_measurements",
                        "id_column": "id",
                        "measurements": [
                            {
                                "column": "CRP",
                                "analyte": "crp",
                                "unit": "mg/dx",
                                "time": {"value": 0, "unit": "days"},
                            }
                        ],
                    },
                ]
            },
            "sources[1].measurements[0]: unit 'mg/dx' is not accepted for crp",
        ),
        (
            {
                "sources": [
                    PATIENTS,
                    {
                        "file": "w.xlsx",
                        "kind": "patient_measurements",
                        "id_column": "id",
                        "measurements": [{"match": "(?P<analyte>x", "unit": "mg/L"}],
                    },
                ]
            },
            "sources[1].measurements[0]: match is not a valid regular expression",
        ),
        (
            {
                "sources": [
                    PATIENTS,
                    {
                        "file": "l.csv",
                        "kind": "long_measurements",
                        "id_column": "id",
                        "time": {"column": "t", "unit": "days"},
                        "analyte": "a",
                        "value": "v",
                        "unit": "mg/L",
                        "analytes": {"Na": "sodium"},
                    },
                ]
            },
            "sources[1].analytes: 'Na' maps to 'sodium', which is neither 'skip' nor an analyte",
        ),
        (
            {
                "sources": [
                    {
                        "file": "l.csv",
                        "kind": "per_patient_events",
                        "id_column": "id",
                        "events": [{"event": "tocilizumab", "flag": "t"}],
                    }
                ]
            },
            "(top level): needs at least one source of kind 'patients'",
        ),
        (
            {
                "sources": [
                    {
                        **PATIENTS,
                        "events": [
                            {
                                "event": "crs_max_grade",
                                "grade": "g",
                                "time": {"column": "d", "unit": "days", "source": "nowhere"},
                            }
                        ],
                    }
                ]
            },
            "sources[0].events[0].time.source: 'nowhere' is not the name of a per-patient source",
        ),
    ],
)
def test_bad_mappings_name_the_yaml_path_and_rule(data, expected):
    lines = problems(data)
    assert any(expected in line for line in lines), lines
    assert all(line.startswith("mapping m.yaml: ") for line in lines)
    assert not any("constrained" in line or "literal[" in line for line in lines), lines


def test_every_problem_on_its_own_line():
    lines = problems(
        {"version": 2, "sources": [{**PATIENTS, "foo": 1, "header_rows": -1}], "bar": True}
    )
    assert len(lines) == 4
    assert any("version" in line for line in lines)
    assert any("sources[0].foo: unknown key" in line for line in lines)
    assert any("sources[0].header_rows" in line for line in lines)
    assert any("bar: unknown key" in line for line in lines)


def test_yaml_files(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text(
        "sources:\n  - {file: p.csv, kind: patients, id_column: id,\n"
        "     columns: {sex: {header: s, values: {yes: M, no: F}}}}\n"
    )
    # YAML 1.2 booleans: ``yes``/``no`` stay text keys instead of turning into true/false
    assert load_mapping(good).sources[0].columns["sex"].values == {"yes": "M", "no": "F"}

    with pytest.raises(CrsRiskError, match=r"mapping .*missing\.yaml: file not found"):
        load_mapping(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("sources:\n  - file: [unclosed\n")
    with pytest.raises(CrsRiskError, match=r"mapping broken\.yaml: not valid YAML at line \d+"):
        load_mapping(broken)
    twice = tmp_path / "twice.yaml"
    twice.write_text("sources: []\nsources: []\n")
    with pytest.raises(CrsRiskError, match="duplicate key 'sources'"):
        load_mapping(twice)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("just text\n")
    with pytest.raises(CrsRiskError, match="top level must be a mapping"):
        load_mapping(scalar)
