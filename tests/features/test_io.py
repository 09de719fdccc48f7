"""The loader, the writer, the digest and the ``crs-risk cohort validate`` command."""

from __future__ import annotations

import shutil
import string
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.cohort import Cohort
from features.errors import CohortError, CrsRiskError
from features.io import load_cohort, read_tables, validate_folder, validate_tables, write_cohort
from features.schema import EVENTS, SCHEMA
from tests.features.cohort_frames import IDS, frames, write_raw


def _write(folder: Path, fmt: str = "csv") -> Path:
    t = frames()
    write_cohort(folder, t["patients"], t["measurements"], t["events"], fmt=fmt)
    return folder


# --- reading ---------------------------------------------------------------------------------
def test_read_tables_keeps_patient_id_as_text(tmp_path):
    folder = write_raw(tmp_path / "c", frames())
    text = (folder / "patients.csv").read_text().replace(IDS[3], "007")
    (folder / "patients.csv").write_text(text)
    tables = read_tables(folder)
    assert set(tables) == {"patients", "measurements", "events"}
    assert "007" in tables["patients"]["patient_id"].tolist()
    assert tables["patients"].attrs["file"] == "patients.csv"


def test_read_tables_turns_integer_parquet_ids_into_text(tmp_path):
    t = frames()
    mapping = {pid: i + 1 for i, pid in enumerate(IDS)}
    for frame in t.values():
        frame["patient_id"] = frame["patient_id"].map(mapping).astype("int64")
    folder = write_raw(tmp_path / "c", t, fmt="parquet")
    assert pq.read_schema(folder / "patients.parquet").field("patient_id").type == "int64"
    tables = read_tables(folder)
    assert tables["patients"]["patient_id"].tolist() == ["1", "2", "3", "4"]
    assert load_cohort(folder).patients["patient_id"].tolist() == ["1", "2", "3", "4"]


def test_read_tables_errors_on_missing_and_ambiguous_tables(tmp_path):
    folder = write_raw(tmp_path / "c", frames())
    frames()["events"].to_parquet(folder / "events.parquet")
    (folder / "patients.csv").rename(folder / "Patients.CSV")
    with pytest.raises(CohortError) as err:
        read_tables(folder)
    text = str(err.value)
    assert "events.parquet and events.csv — table present in two formats" in text
    assert "required table 'patients' missing" in text and "Patients.CSV" in text


def test_mixed_formats_across_tables_are_fine(tmp_path):
    folder = write_raw(tmp_path / "c", frames())
    (folder / "events.csv").unlink()
    frames()["events"].to_parquet(folder / "events.parquet")
    assert load_cohort(folder).digest == load_cohort(_write(tmp_path / "ref")).digest


def test_unreadable_parquet_is_reported(tmp_path):
    folder = write_raw(tmp_path / "c", frames())
    (folder / "events.csv").unlink()
    (folder / "events.parquet").write_bytes(b"PAR1 not really parquet")
    report = validate_folder(folder)
    assert not report.ok
    assert "events.parquet — not a readable Parquet file" in report.render()


# --- loading ---------------------------------------------------------------------------------
def test_load_cohort_gives_the_canonical_form(tmp_path):
    cohort = load_cohort(_write(tmp_path / "my-cohort"))
    assert isinstance(cohort, Cohort)
    assert cohort.source == "my-cohort"
    assert list(cohort.patients.columns) == [c.name for c in SCHEMA["patients"].columns]
    assert cohort.patients["patient_id"].tolist() == sorted(IDS)
    assert str(cohort.patients["patient_id"].dtype) == "str"
    assert cohort.patients["prior_blinatumomab"].isna().all()  # absent optional column
    assert str(cohort.patients["prior_hsct"].dtype) == "boolean"
    assert isinstance(cohort.patients["sex"].dtype, pd.CategoricalDtype)

    m = cohort.measurements
    assert list(m.columns) == [
        "patient_id",
        "hours_from_infusion",
        "analyte",
        "value",
        "unit",
        "qualifier",
    ]
    assert m["value"].dtype == np.float64 and m["hours_from_infusion"].dtype == np.float64
    keys = list(zip(m["patient_id"], m["hours_from_infusion"], m["analyte"], strict=True))
    assert keys == sorted(keys)
    assert isinstance(m.index, pd.RangeIndex)

    def value(pid: str, hours: float, analyte: str) -> tuple[float, str]:
        row = m[(m.patient_id == pid) & (m.hours_from_infusion == hours) & (m.analyte == analyte)]
        assert len(row) == 1
        return float(row["value"].iloc[0]), str(row["unit"].iloc[0])

    assert value(IDS[0], -24.0, "crp") == pytest.approx((12.0, "mg/L"))
    assert value(IDS[0], 24.0, "il6") == (450.0, "pg/mL")  # alias "IL-6" → key
    t, unit = value(IDS[0], 24.0, "temperature")
    assert unit == "°C" and t == pytest.approx(39.0)
    assert value(IDS[1], -2.0, "platelets")[0] == pytest.approx(150.0)
    assert value(IDS[1], 12.0, "creatinine")[0] == pytest.approx(1.0)
    assert value(IDS[1], 30.0, "ldh")[0] == pytest.approx(300.0)
    assert m.loc[m.qualifier == "<", "analyte"].tolist() == ["il6"]

    e = cohort.events
    assert list(e.columns) == [c.name for c in SCHEMA["events"].columns]
    assert str(e["grade"].dtype) == "Int64" and e["hours_from_infusion"].dtype == np.float64
    assert list(e["event"].cat.categories) == list(EVENTS)
    unknown = e[e["hours_from_infusion"].isna()]
    assert unknown["event"].tolist() == ["crs_max_grade"] and unknown["grade"].tolist() == [2]


def test_load_cohort_raises_with_every_problem(tmp_path):
    t = frames()
    t["measurements"].loc[1, "unit"] = "mg/dk"
    t["events"].loc[0, "grade"] = None
    folder = write_raw(tmp_path / "c", t)
    with pytest.raises(CohortError) as err:
        load_cohort(folder)
    text = str(err.value)
    assert "measurements.csv:2 column=unit — unit not accepted for crp" in text
    assert "mg/dk" not in text  # the cell is never shown
    assert "events.csv:1 column=grade — grade required for crs_onset" in text
    assert len(err.value.problems) == 2
    assert "SECRET" not in text


def test_digest_same_for_csv_and_parquet_and_any_row_order(tmp_path):
    csv = load_cohort(_write(tmp_path / "a", "csv"))
    parquet = load_cohort(_write(tmp_path / "b", "parquet"))
    assert csv.digest == parquet.digest
    assert len(csv.digest) == 64
    pd.testing.assert_frame_equal(csv.measurements, parquet.measurements)
    pd.testing.assert_frame_equal(csv.events, parquet.events)
    pd.testing.assert_frame_equal(csv.patients, parquet.patients)

    t = frames()
    shuffled = {k: v.sample(frac=1.0, random_state=3).reset_index(drop=True) for k, v in t.items()}
    write_raw(tmp_path / "shuffled", shuffled)
    assert load_cohort(tmp_path / "shuffled").digest == csv.digest


def test_digest_changes_with_content(tmp_path):
    base = load_cohort(_write(tmp_path / "a")).digest
    t = frames()
    t["measurements"].loc[2, "value"] = 451.0
    assert load_cohort(write_raw(tmp_path / "b", t)).digest != base
    t = frames()
    t["measurements"].loc[1, "unit"] = "mg/L"  # same number, other unit → other content
    assert load_cohort(write_raw(tmp_path / "c", t)).digest != base


def test_identical_duplicate_is_dropped_on_load(tmp_path):
    t = frames()
    t["measurements"] = pd.concat([t["measurements"], t["measurements"].iloc[[1]]])
    cohort = load_cohort(write_raw(tmp_path / "c", t))
    assert len(cohort.measurements) == 12
    assert len(cohort.warnings) == 1 and "identical duplicate" in cohort.warnings[0]
    assert cohort.digest == load_cohort(_write(tmp_path / "ref")).digest


def test_summary_counts(tmp_path):
    report = validate_folder(_write(tmp_path / "c"))
    s = report.summary
    assert s["patients"] == 4 and s["centres"] == {"A": 2, "B": 2}
    assert s["measurements"] == 12
    assert s["measurements_by_analyte"]["il6"] == 3
    # the landmark cut's boundaries: a value at exactly 0/24/48/72 h belongs to the window it
    # closes (issue 11 §1)
    assert s["measurements_by_window"] == {
        "pre-infusion (≤ 0 h)": 4,
        "(0, 24] h": 3,
        "(24, 48] h": 1,
        "(48, 72] h": 3,
        "> 72 h": 1,
    }
    assert s["events_by_type"]["crs_onset"] == 2
    assert s["events_unknown_time"] == 1
    assert s["missing_by_patient_column"]["marrow_blasts_pct"] == pytest.approx(0.25)
    text = report.render()
    assert "patients: 4 in 2 centre(s)" in text and "1 with unknown time" in text


# --- writing ---------------------------------------------------------------------------------
def test_write_cohort_is_deterministic_and_writes_side_files(tmp_path):
    t = frames()
    truth = pd.DataFrame({"patient_id": list(IDS), "severe": [1, 0, 1, 0]})
    for fmt in ("csv", "parquet"):
        a, b = tmp_path / f"a-{fmt}", tmp_path / f"b-{fmt}"
        write_cohort(a, t["patients"], t["measurements"], t["events"], fmt, {"truth": truth})
        write_cohort(b, t["patients"], t["measurements"], t["events"], fmt, {"truth": truth})
        names = sorted(p.name for p in a.iterdir())
        assert names == sorted(
            [f"patients.{fmt}", f"measurements.{fmt}", f"events.{fmt}", f"truth.{fmt}"]
        )
        for name in names:
            assert (a / name).read_bytes() == (b / name).read_bytes(), name
    header = (tmp_path / "a-csv" / "measurements.csv").read_text().splitlines()[0]
    assert header == "patient_id,hours_from_infusion,analyte,value,unit,qualifier"


def test_write_cohort_writes_nothing_when_invalid(tmp_path):
    t = frames()
    t["measurements"].loc[0, "value"] = -5.0
    out = tmp_path / "new" / "cohort"
    with pytest.raises(CohortError) as err:
        write_cohort(out, t["patients"], t["measurements"], t["events"], "parquet")
    assert "measurements.parquet:1 column=value" in str(err.value)
    assert not out.exists() and not out.parent.exists()


def test_write_cohort_refuses_to_create_an_ambiguous_folder(tmp_path):
    folder = _write(tmp_path / "c", "csv")
    t = frames()
    with pytest.raises(CrsRiskError, match="ambiguous"):
        write_cohort(folder, t["patients"], t["measurements"], t["events"], "parquet")
    assert sorted(p.suffix for p in folder.iterdir()) == [".csv"] * 3
    with pytest.raises(CrsRiskError, match="unknown format"):
        write_cohort(folder, t["patients"], t["measurements"], t["events"], "xlsx")


# --- command line ----------------------------------------------------------------------------
def test_cli_validate_ok(cli, tmp_path):
    result = cli("cohort", "validate", _write(tmp_path / "c"))
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "cohort 'c' is valid." in result.stdout
    assert "patients: 4 in 2 centre(s)" in result.stdout
    assert "SECRET" not in result.stdout + result.stderr


def test_cli_validate_never_shows_an_id_of_a_table_read_later(cli, tmp_path):
    """A patient id that appears only in measurements.csv, pasted into an age cell of
    patients.csv (read first): the age problem is reported without the id (cell problems are
    shown once every table's ids are known)."""
    t = frames()
    secret = "PT-SECRET-ONLY-MEASURED"
    patients = t["patients"].astype({"age_years": object})
    patients.loc[patients.index[1], "age_years"] = secret
    measurements = t["measurements"].astype({"patient_id": object})
    measurements.loc[measurements.index[0], "patient_id"] = secret
    folder = write_raw(tmp_path / "c", {**t, "patients": patients, "measurements": measurements})
    result = cli("cohort", "validate", folder)
    assert result.exit_code == 2
    assert (
        "patients.csv:2 column=age_years — not a number; the cell equals a patient id"
        in result.stdout
    ), result.stdout
    assert secret not in result.stdout + result.stderr


def test_cli_validate_never_shows_the_ids_of_a_repeated_id_column(cli, tmp_path):
    """A second ``patient_id`` column (only the first is read) still holds ids: one of them in
    an age cell is hidden (found by the random-frames test under hypothesis)."""
    t = frames()
    secret = "PT-SECRET-IN-SECOND-ID-COLUMN"
    patients = t["patients"].astype({"age_years": object})
    patients.loc[patients.index[1], "age_years"] = secret
    patients.insert(1, "patient_id ", [secret] * len(patients), allow_duplicates=True)
    folder = write_raw(tmp_path / "c", {**t, "patients": patients})
    result = cli("cohort", "validate", folder)
    assert result.exit_code == 2
    assert "column appears more than once in the header" in result.stdout
    assert "patients.csv:2 column=age_years — not a number; the cell equals a patient id" in (
        result.stdout
    )
    assert secret not in result.stdout + result.stderr


def test_cli_validate_missing_folder(cli, tmp_path):
    result = cli("cohort", "validate", tmp_path / "nowhere")
    assert result.exit_code == 2
    assert "cohort folder not found" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_cli_validate_a_corrupted_copy_names_each_problem(cli, tmp_path):
    """A new user's copy of a valid cohort with four typical mistakes → exit 2, each named."""
    good = _write(tmp_path / "good")
    bad = tmp_path / "bad"
    shutil.copytree(good, bad)
    m = (bad / "measurements.csv").read_text().splitlines()
    assert m[2].endswith(",1.2,mg/dL,") and m[3].startswith(f"{IDS[0]},24,IL-6,450,")
    m[2] = m[2].replace("mg/dL", "mg/dl.")  # typo'd unit, row 2
    m[3] = m[3].replace(",450,", ",-450,")  # negative IL-6, row 3
    m[12] = m[12].replace(IDS[3], "PT-SECRET-77")  # unknown patient, row 12
    (bad / "measurements.csv").write_text("\n".join(m) + "\n")
    p = pd.read_csv(bad / "patients.csv", dtype=str).drop(columns="center")  # missing column
    p.to_csv(bad / "patients.csv", index=False)

    result = cli("cohort", "validate", bad)
    assert result.exit_code == 2
    out = result.stdout
    assert "measurements.csv:2 column=unit — unit not accepted for crp" in out
    assert "measurements.csv:3 column=value — impossible il6 value" in out
    assert out.count("the value is below this range") == 1
    assert "mg/dl." not in out and "-450" not in out  # the cells are never shown
    assert "measurements.csv:12 column=patient_id — patient_id not found" in out
    assert "patients.csv column=center — required column missing" in out
    assert "SECRET" not in out + result.stderr and "Traceback" not in out + result.stderr
    assert good.exists() and load_cohort(good).n_patients == 4


# --- garbage in: only CrsRiskError out ---------------------------------------------------------
def _load_or_user_error(folder: Path) -> None:
    try:
        cohort = load_cohort(folder)
    except CrsRiskError as exc:
        assert "Traceback" not in str(exc)
        return
    assert cohort.n_patients >= 1


_NAMES = [c.name for t in SCHEMA.values() for c in t.columns] + ["junk", "", "Unit", "välue"]
_CELLS = st.one_of(
    st.sampled_from(
        [
            *("", "NA", "1", "0", "-1", "1e400", "nan", "inf", "yes", "F", "<", "il6", "IL-6"),
            *("°F", "mg/dL", "crs_onset", "death", "tocilizumab", "PT-1", "3.5", "x", '"', "a,b"),
        ]
    ),
    st.text(string.printable + "µ°éß\u00a0", max_size=8),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(10**20), 10**20).map(str),
)


def _csv_text(draw_header: list[str], rows: list[list[str]]) -> str:
    def quote(cell: str) -> str:
        return '"' + cell.replace('"', '""') + '"' if any(c in cell for c in ',"\n\r') else cell

    return "\n".join(",".join(quote(c) for c in line) for line in [draw_header, *rows]) + "\n"


_TABLE = st.integers(1, 6).flatmap(
    lambda k: st.tuples(
        st.lists(st.sampled_from(_NAMES), min_size=k, max_size=k),
        st.lists(st.lists(_CELLS, min_size=k, max_size=k), max_size=6),
    )
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_csv_text_gives_only_user_errors(data):
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_raw(Path(tmp) / "c", frames())
        for name in data.draw(st.sets(st.sampled_from(list(SCHEMA)), min_size=1)):
            header, rows = data.draw(_TABLE)
            if data.draw(st.booleans()):  # keep the real header, garble the cells
                header = [c.name for c in SCHEMA[name].columns][: len(header)]
                header += ["extra"] * (len(rows[0]) - len(header) if rows else 0)
                rows = [r[: len(header)] + [""] * (len(header) - len(r)) for r in rows]
            (folder / f"{name}.csv").write_text(_csv_text(header, rows), encoding="utf-8")
        _load_or_user_error(folder)


@settings(max_examples=40, deadline=None)
@given(blob=st.binary(max_size=300), name=st.sampled_from(list(SCHEMA)), fmt=st.booleans())
def test_random_bytes_give_only_user_errors(blob, name, fmt):
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_raw(Path(tmp) / "c", frames())
        (folder / f"{name}.csv").unlink()
        (folder / f"{name}.{'csv' if fmt else 'parquet'}").write_bytes(blob)
        _load_or_user_error(folder)


_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
    st.sampled_from(["il6", "pg/mL", "crs_onset", "F", "true", "<", IDS[0]]),
)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_random_frames_give_only_user_errors(data):
    tables = frames()
    for name in data.draw(st.sets(st.sampled_from(list(SCHEMA)), min_size=1)):
        columns = data.draw(st.lists(st.sampled_from(_NAMES), max_size=7))
        n = data.draw(st.integers(0, 5))
        tables[name] = pd.DataFrame(
            {
                i: pd.Series(data.draw(st.lists(_VALUES, min_size=n, max_size=n)), dtype=object)
                for i in range(len(columns))
            }
        )
        tables[name].columns = columns
    report = validate_tables(tables, "random")
    assert report.ok == (report.cohort is not None)
    ids = {
        v
        for frame in tables.values()
        for j, label in enumerate(frame.columns)
        if str(label).strip() == "patient_id"
        for v in frame.iloc[:, j].tolist()
        if isinstance(v, str) and v in IDS
    }
    rendered = report.render()
    assert not any(pid in rendered for pid in ids)
    with tempfile.TemporaryDirectory() as tmp:
        fmt = data.draw(st.sampled_from(["csv", "parquet"]))
        try:
            write_cohort(
                Path(tmp) / "c", tables["patients"], tables["measurements"], tables["events"], fmt
            )
        except CrsRiskError:
            return
        _load_or_user_error(Path(tmp) / "c")
