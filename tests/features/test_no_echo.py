"""Offline messages never echo a data cell (engineering standard: "never the submitted value").

A unique marker is planted in cells of a small cohort (``crs-risk cohort validate``) and of a
small extract (``crs-risk cohort import``); the real command must fail with exit 2, name the
place of each problem, and the marker must appear nowhere in its output. Numeric markers check
numbers too (an out-of-range lab value or time is the submitted value all the same).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from openpyxl import Workbook

from features.schema import SCHEMA
from tests.features.cohort_frames import frames, write_raw
from tests.features.test_importer import EVENTS, LONG, WIDE, YES_NO, dump, patients_source, write

MARKER = "ZZSECRET-PATIENT-NAME"
NUMBER = 7654321.25
NUMBER_TEXTS = ("7654321", "7.65432e+06", "7.654321e+06", "7.65432e+6")


def _absent(text: str, *markers: str) -> None:
    for m in markers:
        assert m.casefold() not in text.casefold(), f"{m!r} echoed in:\n{text}"


# --- crs-risk cohort validate -----------------------------------------------------------------
CELLS = [(t, c.name) for t in ("patients", "measurements", "events") for c in SCHEMA[t].columns]


def _plant(tables: dict[str, pd.DataFrame], table: str, column: str, value: object) -> None:
    frame = tables[table]
    if column not in frame.columns:
        frame[column] = pd.Series([None] * len(frame), dtype=object)
    frame[column] = frame[column].astype(object)
    frame.loc[1, column] = value  # data row 2


def _validate(cli: Callable, tmp_path: Path, plant: Callable[[dict], None], fmt: str = "csv"):
    tables = frames()
    # an error of its own, so every run fails whatever the marker's cell makes of it
    tables["events"]["grade"] = tables["events"]["grade"].astype(object)
    tables["events"].loc[0, "grade"] = None
    plant(tables)
    if fmt == "parquet":  # mixed cells: Parquet columns of text (the validator parses them)
        tables = {k: v.astype("string") for k, v in tables.items()}
    result = cli("cohort", "validate", write_raw(tmp_path / "c", tables, fmt))
    assert result.exit_code == 2, result.stdout + result.stderr
    assert f"events.{fmt}:1 column=grade" in result.stdout, result.stdout
    return result.stdout + result.stderr


@pytest.mark.parametrize(("table", "column"), CELLS, ids=[f"{t}.{c}" for t, c in CELLS])
def test_validate_never_echoes_a_text_cell(cli, tmp_path, table, column):
    out = _validate(cli, tmp_path, lambda t: _plant(t, table, column, MARKER))
    _absent(out, MARKER)


NUMERIC = [
    (t, c.name)
    for t in ("patients", "measurements", "events")
    for c in SCHEMA[t].columns
    if c.dtype in ("float", "int")
]


@pytest.mark.parametrize(("table", "column"), NUMERIC, ids=[f"{t}.{c}" for t, c in NUMERIC])
def test_validate_never_echoes_a_number(cli, tmp_path, table, column):
    out = _validate(cli, tmp_path, lambda t: _plant(t, table, column, NUMBER))
    _absent(out, *NUMBER_TEXTS)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_validate_never_echoes_any_cell_of_a_corrupted_row(cli, tmp_path, fmt):
    """The marker in every cell of row 2 of every table at once (ids included)."""

    def plant(tables: dict[str, pd.DataFrame]) -> None:
        for table, column in CELLS:
            _plant(tables, table, column, f"{MARKER}-{table}-{column}")

    out = _validate(cli, tmp_path, plant, fmt)
    _absent(out, MARKER)


def test_validate_still_says_what_kind_of_cell_is_wrong(cli, tmp_path):
    """Without the value, the message still names file, row, column, rule and the cell's kind."""
    out = _validate(cli, tmp_path, lambda t: _plant(t, "patients", "age_years", MARKER))
    assert "patients.csv:2 column=age_years — not a number; the cell holds text" in out, out


# --- crs-risk cohort import -------------------------------------------------------------------
def _extract(tmp_path: Path) -> Path:
    src = tmp_path / "extract"
    src.mkdir()
    write(
        src / "patients.csv",
        """
Patient,Centre,Sex,Age (y),Toci,Max CRS,CRS day,Infused
P1,A,1,10,1,3,2,2024-03-01
P2,A,2,7.5,0,0,,2024-03-02
P3,B,2,9,,1,1.5,2024-03-03
""",
    )
    write(
        src / "labs.csv",
        """
patient,day,test,result,units,q
P1,-2,CRP,1.2,mg/dL,
P1,0,IL-6,1.5,pg/mL,<
P2,0.5,CRP,30,mg/L,
""",
    )
    write(
        src / "flowsheet.csv",
        """
patient,hour,Temp (C),CRP (mg/L),CRS grade
P1,0,37.0,5,0
P1,12,38.5,20,1
P2,0,36.8,2,0
""",
    )
    write(
        src / "events.csv",
        """
patient,hours,what,grade,dose,why
P1,20,Toci,,8,crs
P3,50,ICANS,2,,
""",
    )
    return src


def _set_cell(path: Path, row: int, header: str, value: str) -> None:
    """Replace one cell of a small CSV (``row`` = 1-based data row)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    names = lines[0].split(",")
    cells = lines[row].split(",")
    cells[names.index(header)] = value
    lines[row] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _sources() -> list[dict]:
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
    long = {**LONG, "qualifier": "q", "analytes": {}}
    events = {
        **EVENTS,
        "event": {
            "header": "what",
            "values": {"Toci": "tocilizumab", "ICANS": "icans"},
        },
        "dose": "dose",
        "indication": {"header": "why"},
    }
    return [clinic, long, WIDE, events]


# (file, data row, header, planted text): every kind of cell a rule reads
IMPORT_CELLS = [
    ("patients.csv", 2, "Sex", MARKER),  # value map
    ("patients.csv", 2, "Age (y)", MARKER),  # number
    ("patients.csv", 2, "Age (y)", str(NUMBER)),  # out of range
    ("patients.csv", 1, "Toci", MARKER),  # flag value map
    ("patients.csv", 1, "Max CRS", MARKER),  # grade
    ("patients.csv", 1, "Max CRS", str(NUMBER)),  # grade out of range
    ("patients.csv", 1, "CRS day", MARKER),  # time
    ("patients.csv", 1, "CRS day", str(NUMBER)),  # time outside the contract
    ("labs.csv", 1, "test", MARKER),  # unknown analyte
    ("labs.csv", 1, "result", MARKER),  # value
    ("labs.csv", 1, "result", str(NUMBER)),  # value out of range
    ("labs.csv", 1, "units", MARKER),  # unit
    ("labs.csv", 1, "q", MARKER),  # qualifier
    ("labs.csv", 1, "day", MARKER),  # time
    ("flowsheet.csv", 2, "Temp (C)", MARKER),
    ("flowsheet.csv", 2, "CRS grade", MARKER),
    ("flowsheet.csv", 2, "hour", str(NUMBER)),
    ("events.csv", 1, "what", MARKER),  # event value map
    ("events.csv", 2, "grade", MARKER),
    ("events.csv", 1, "dose", MARKER),
    ("events.csv", 1, "why", MARKER),  # indication
]


@pytest.mark.parametrize(
    ("file", "row", "header", "text"),
    IMPORT_CELLS,
    ids=[f"{f}:{r}:{h}:{'number' if t != MARKER else 'text'}" for f, r, h, t in IMPORT_CELLS],
)
def test_import_never_echoes_a_cell(cli, tmp_path, file, row, header, text):
    src = _extract(tmp_path)
    _set_cell(src / file, row, header, text)
    mapping = dump(tmp_path, {"sources": _sources()})
    out = tmp_path / "cohort"
    result = cli("cohort", "import", "--mapping", mapping, "--out", out, src)
    assert result.exit_code == 2, result.stdout + result.stderr
    assert f"{file} row {row + 1}" in result.stderr or file in result.stderr, result.stderr
    _absent(result.stdout + result.stderr, MARKER, *NUMBER_TEXTS)
    assert not out.exists()


def test_import_never_echoes_the_unaccepted_units_of_many_rows(cli, tmp_path):
    """Distinct unaccepted units are counted, each named by its first row, never shown."""
    src = _extract(tmp_path)
    for row, n in ((1, 1), (2, 1), (3, 2)):  # crp rows 1 and 3 (two units), il6 row 2
        _set_cell(src / "labs.csv", row, "units", f"{MARKER}{n}")
    mapping = dump(tmp_path, {"sources": _sources()})
    result = cli("cohort", "import", "--mapping", mapping, "--out", tmp_path / "c", src)
    assert result.exit_code == 2
    _absent(result.stderr, MARKER)
    assert "unit not accepted for crp in 2 rows (2 distinct units, first at rows 2, 4)" in (
        result.stderr
    ), result.stderr


def test_import_never_echoes_a_date_cell(cli, tmp_path):
    """An Excel date where a number is expected, and a marker where a date is expected."""
    src = _extract(tmp_path)
    wb = Workbook()
    ws = wb.active
    ws.append(["ID", "Day 0 IL-6 (pg/mL)", "when"])
    ws.append(["P1", 12, MARKER])
    ws.append(["P2", pd.Timestamp("2031-07-09 13:14"), "2024-03-02"])
    wb.save(src / "panel.xlsx")
    panel = {
        "file": "panel.xlsx",
        "kind": "patient_measurements",
        "id_column": {"letter": "A"},
        "measurements": [
            {
                "column": "Day 0 IL-6 (pg/mL)",
                "analyte": "il6",
                "unit": "pg/mL",
                "time": {"column": "when", "unit": "date"},
            }
        ],
    }
    clinic = patients_source()
    mapping = dump(
        tmp_path,
        {
            "infusion": {"source": "clinic", "column": "Infused"},
            "sources": [clinic, panel],
        },
    )
    result = cli("cohort", "import", "--mapping", mapping, "--out", tmp_path / "c", src)
    assert result.exit_code == 2, result.stdout + result.stderr
    _absent(result.stdout + result.stderr, MARKER, "2031", "13:14")
    assert "the cell holds a date" in result.stderr, result.stderr
