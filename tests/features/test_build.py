"""Known values for every feature family, the table contract, files and the CLI."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from features.build import (
    BuildReport,
    build_features,
    build_landmarks,
    build_patient_features,
    read_table,
    write_table,
)
from features.catalog import feature_names
from features.errors import CrsRiskError
from features.vocabulary import to_canonical
from tests.conftest import REPO
from tests.features.feature_cohorts import make_cohort, patient

# pre-lymphodepletion labs given in the units a lab reports, converted as the loader does
LDH = to_canonical("ldh", 5.0, "µkat/L")  # 300 U/L
CRP = to_canonical("crp", 2.0, "mg/dL")  # 20 mg/L
PLT = to_canonical("platelets", 100_000, "/µL")  # 100 ×10⁹/L
CREAT = to_canonical("creatinine", 44.2, "µmol/L")  # 0.5 mg/dL


@pytest.fixture
def cohort():
    return make_cohort(
        [
            patient("a", sex="M", product="ARI-0001", marrow_blasts_pct=55.0, prior_hsct=True),
            patient("b", sex=None, product=None, lymphodepletion=None, age_years=None),
            patient("c", marrow_blasts_pct=40.0),
        ],
        [
            ("a", -120, "ldh", LDH),
            ("a", -120, "crp", CRP),
            ("a", -120, "platelets", PLT),
            ("a", -120, "creatinine", CREAT),
            ("a", -24, "ldh", 900.0),  # later pre-infusion draw: not the pre-LD baseline
            ("a", 0, "il6", 10.0),
            ("a", 24, "il6", 100.0),
            ("a", 48, "il6", 1000.0),
            ("a", 60, "il6", 5.0),  # after 48 h: invisible at 48 h
            ("a", 0, "platelets", 90.0),
            ("a", 36, "platelets", 60.0),
            ("a", 6, "temperature", 38.0),
            ("a", 30, "temperature", 37.2),
            ("a", 40, "temperature", 38.6),
            ("a", 47, "temperature", 37.5),
            ("b", 12, "temperature", 37.9),
            ("b", 24, "crp", 50.0),  # no baseline → no fold change
            ("c", 10, "temperature", 39.5),
        ],
        [
            ("a", 20, "crs_onset", 1),
            ("a", 30, "crs_grade", 2),
            ("a", 44, "crs_grade", 1),
            ("a", 70, "crs_grade", 3),
            ("a", 40, "tocilizumab", None, 8.0),
            ("c", 10, "crs_onset", 1),
            ("c", 46, "crs_resolved"),
        ],
    )


def _row(table, pid):
    return table.X.loc[table.ids[table.ids == pid].index[0]]


def test_patient_and_disease_burden_features(cohort):
    t = build_features(cohort, "severe_crs", "48h")
    a, b, c = (_row(t, p) for p in "abc")
    assert a["sex_male"] == 1 and c["sex_male"] == 0 and np.isnan(b["sex_male"])
    assert a["product_ari0001"] == 1 and a["product_tisagenlecleucel"] == 0
    assert np.isnan(b["product_ari0001"]) and np.isnan(b["lymphodepletion_flu_cy"])
    assert a["lymphodepletion_flu_cy"] == 1 and a["lymphodepletion_none"] == 0
    assert a["prior_hsct"] == 1 and c["prior_hsct"] == 0
    assert a["marrow_blasts_pct"] == 55 and a["high_marrow_burden"] == 1
    assert c["high_marrow_burden"] == 1  # exactly 40% is high burden
    assert np.isnan(b["age_years"]) and a["car_t_dose"] == 3.0


def test_baseline_labs_easix_and_m_easix_with_unit_conversions(cohort):
    a = _row(build_features(cohort, "severe_crs", 0), "a")
    assert a["ldh_pre_ld"] == pytest.approx(300.0)  # earliest pre-infusion value, not 900
    assert a["crp_pre_ld"] == pytest.approx(20.0)  # stored in mg/L
    assert a["platelets_pre_ld"] == pytest.approx(100.0)
    assert a["creatinine_pre_ld"] == pytest.approx(0.5)
    # EASIX = LDH (U/L) × creatinine (mg/dL) / platelets (10⁹/L) = 300 × 0.5 / 100
    assert a["easix_pre_ld"] == pytest.approx(1.5)
    # m-EASIX = LDH × CRP in mg/dL (20 mg/L = 2 mg/dL) / platelets = 300 × 2 / 100
    assert a["m_easix_pre_ld"] == pytest.approx(6.0)
    b = _row(build_features(cohort, "severe_crs", 0), "b")
    assert np.isnan(b["easix_pre_ld"]) and np.isnan(b["m_easix_pre_ld"])


def test_cytokine_and_lab_course_features(cohort):
    t = build_features(cohort, "severe_crs", 48)
    a, b = _row(t, "a"), _row(t, "b")
    assert a["il6_last"] == 1000 and a["il6_max"] == 1000
    assert a["il6_fold_change"] == pytest.approx(100.0)  # max / baseline (0 h value)
    expected = np.polyfit([0, 1, 2], np.log10([11.0, 101.0, 1001.0]), 1)[0]
    assert a["il6_slope_24h"] == pytest.approx(expected)
    assert a["il6_hours_since_first"] == 48 and a["il6_n"] == 3 and a["il6_missing"] == 0
    # platelets: linear slope in 10⁹/L per 24 h over -120 h, 0 h, 36 h
    days = np.array([-120.0, 0.0, 36.0]) / 24
    assert a["platelets_slope_24h"] == pytest.approx(np.polyfit(days, [100, 90, 60], 1)[0])
    assert a["platelets_last"] == 60 and a["platelets_fold_change"] == pytest.approx(1.0)
    assert b["crp_last"] == 50 and np.isnan(b["crp_fold_change"]) and np.isnan(b["crp_slope_24h"])
    # an analyte nobody has: all-missing columns plus the indicator
    assert np.isnan(t.X["ifng_max"]).all() and (t.X["ifng_missing"] == 1).all()
    assert (t.X["ifng_n"] == 0).all()


def test_temperature_and_fever_features(cohort):
    t = build_features(cohort, "severe_crs", 48)
    a, b, c = (_row(t, p) for p in "abc")
    assert a["temperature_max"] == 38.6 and a["temperature_last"] == 37.5
    assert a["temperature_n"] == 4 and a["fever_n"] == 2
    assert a["fever_hours_since_first"] == 42  # first ≥38.0 °C at 6 h
    assert a["fever_present"] == 1  # 38.6 °C at 40 h is within the last 24 h
    assert b["fever_present"] == 0 and np.isnan(b["fever_hours_since_first"])  # 37.9 is not
    assert c["fever_present"] == 0 and c["fever_hours_since_first"] == 38  # fever 38 h ago
    assert (
        np.isnan(_row(build_features(cohort, "severe_crs", 0), "c")["temperature_max"])
        and _row(build_features(cohort, "severe_crs", 0), "c")["temperature_missing"] == 1
    )


def test_crs_course_features(cohort):
    t = build_features(cohort, "severe_crs", 48)
    a, b, c = (_row(t, p) for p in "abc")
    assert a["crs_present"] == 1 and a["crs_grade_current"] == 1
    assert a["crs_max_grade_so_far"] == 2 and a["crs_hours_since_onset"] == 28
    assert c["crs_present"] == 0 and c["crs_max_grade_so_far"] == 1  # resolved at 46 h
    # b's only row (37.9 °C at 12 h) grades 0 until it expires at 36 h: unknown at 48 h
    assert np.isnan(b["crs_present"]) and np.isnan(b["crs_grade_current"])
    assert b["crs_max_grade_so_far"] == 0 and np.isnan(b["crs_hours_since_onset"])
    assert _row(build_features(cohort, "severe_crs", 24), "b")["crs_present"] == 0
    assert "crs_present" not in build_features(cohort, "severe_crs", 0).X.columns
    toci = build_features(cohort, "toci_refractory", "first_toci")
    assert toci.ids.tolist() == ["a"]
    row = toci.X.iloc[0]
    assert row["toci_crs_grade"] == 2 and row["toci_hours_since_onset"] == 20
    assert row["toci_hours_from_infusion"] == 40
    assert row["il6_last"] == 100 and row["il6_n"] == 2  # only values up to the first dose
    # grade 1 at 64 h (24 h after the dose) is an improvement on 2, but the grade 3 at 70 h is
    # worsening within 72 h of the first dose: refractory, and the summary says by which clause
    assert int(toci.y.iloc[0]) == 1
    assert toci.summary["positive_clauses"] == {"worsening": 1}


def test_table_contract(cohort):
    t = build_features(cohort, "severe_crs", "48")
    assert list(t.X.columns) == feature_names("severe_crs", "48h")
    assert (t.X.dtypes == np.float64).all()
    assert isinstance(t.X.index, pd.RangeIndex) and t.y.index.equals(t.X.index)
    assert "patient_id" not in t.X.columns and set(t.ids) == {"a", "b", "c"}
    assert t.y.dtype == np.int64 and t.y.tolist() == [1, 0, 0]
    assert list(t.groups.columns) == ["center", "age_band", "product", "marrow_burden"]
    assert t.groups.loc[0].tolist() == ["C01", "10–17", "ARI-0001", "≥40%"]
    assert t.groups.loc[1].tolist() == ["C01", "unknown", "unknown", "5–39%"]
    s = t.summary
    assert s["eligible"] == 3 and s["events"] == 1 and s["exclusions"] == {}
    assert set(s["missingness"]) == set(t.X.columns)
    assert s["missingness"]["il6_max"] == pytest.approx(2 / 3)
    assert s["derivation"] and s["landmark"] == "48h" and s["task"] == "severe_crs"


def test_same_columns_whatever_the_cohort_holds(cohort):
    bare = make_cohort([patient("z")])
    full = build_features(cohort, "severe_crs", 24)
    empty = build_features(bare, "severe_crs", 24)
    assert list(empty.X.columns) == list(full.X.columns)
    assert empty.X.iloc[0][[c for c in empty.X.columns if c.endswith("_missing")]].eq(1).all()


def test_serving_build_has_no_label_and_reports_not_eligible(cohort):
    late = make_cohort(
        [patient("a"), patient("b")],
        [("a", 10, "il6", 50.0)],
        [("b", 20, "crs_onset", 2), ("b", 40, "crs_grade", 3)],
    )
    t = build_patient_features(late, "severe_crs", 48)
    assert t.ids.tolist() == ["a"] and t.y.isna().all() and t.summary["events"] is None
    assert t.summary["exclusions"] == {
        "grade ≥3 at or before the landmark (outcome already reached)": 1
    }
    train = build_features(cohort, "severe_crs", 48)
    serve = build_patient_features(cohort, "severe_crs", 48)
    pd.testing.assert_frame_equal(train.X, serve.X)


def test_build_landmarks_matches_single_builds(cohort):
    all_lm = build_landmarks(cohort, "severe_crs")
    assert list(all_lm) == ["0h", "24h", "48h", "72h"]
    for name, table in all_lm.items():
        single = build_features(cohort, "severe_crs", name)
        pd.testing.assert_frame_equal(table.X, single.X)
        assert table.ids.tolist() == single.ids.tolist() and table.y.tolist() == single.y.tolist()
    assert all_lm["72h"].summary["exclusions"] == {
        "grade ≥3 at or before the landmark (outcome already reached)": 1
    }


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_write_and_read_back(cohort, tmp_path, suffix):
    t = build_features(cohort, "severe_crs", 48)
    out = write_table(t, tmp_path / f"t{suffix}")
    if suffix == ".parquet":
        back = read_table(out)
        pd.testing.assert_frame_equal(back.X, t.X)
        assert back.ids.tolist() == t.ids.tolist() and back.summary == t.summary
    else:
        frame = pd.read_csv(out)
        assert list(frame.columns[:6]) == ["patient_id", *t.groups.columns, "y"]
        np.testing.assert_allclose(frame[t.X.columns].to_numpy(), t.X.to_numpy())
    text = BuildReport(t, out).render()
    assert "eligible: 3" in text and "events: 1" in text and "il6_max" in text
    with pytest.raises(CrsRiskError, match=r"parquet or \.csv"):
        write_table(t, tmp_path / "t.xlsx")


def test_crs_onset_from_a_timed_max_grade_only():
    """car22-like: the maximum is timed at onset; features may use the onset, never the value."""
    c = make_cohort(
        [patient("a"), patient("b")],
        [],
        [("a", 30, "crs_max_grade", 4), ("b", 30, "crs_max_grade", 1)],
    )
    # after onset the grade in force is unknown: both excluded whatever their maximum, in
    # serving and training alike (the old code kept b as a negative and excluded only a)
    for t in (build_patient_features(c, "severe_crs", 48), build_features(c, "severe_crs", 48)):
        assert t.ids.tolist() == [] and t.summary["excluded_at_landmark"] == {
            "CRS grade at the landmark unknown (only the onset of a whole-course maximum grade "
            "is recorded)": 2
        }
    # before onset both are grade 0, indistinguishable, and labelled by their maximum
    t = build_patient_features(c, "severe_crs", 24)
    assert t.ids.tolist() == ["a", "b"]
    pd.testing.assert_series_equal(t.X.iloc[0], t.X.iloc[1], check_names=False)
    assert t.X.loc[0, "crs_present"] == 0 and np.isnan(t.X.loc[0, "crs_hours_since_onset"])
    assert build_features(c, "severe_crs", 24).y.tolist() == [1, 0]


# --- integration: the simulator, the CLI and the real car22 cohort ----------------------------
@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory):
    from features.synth import synth_to_folder

    out = tmp_path_factory.mktemp("synth") / "cohort"
    synth_to_folder(out, n=300, seed=11)
    return out


def test_cli_builds_the_synthetic_cohort(synth_dir, tmp_path, cli):
    out = tmp_path / "severe_48.parquet"
    r = cli(
        "features", "build", synth_dir, "--task", "severe_crs", "--landmark", "48", "--out", out
    )
    assert r.exit_code == 0, r.stderr
    for text in ("eligible:", "events:", "exclusions by reason:", "missingness per feature"):
        assert text in r.stdout
    table = read_table(out)
    assert list(table.X.columns) == feature_names("severe_crs", "48h")
    assert table.summary["eligible"] == len(table.X) > 0 and table.n_events > 0
    toci = cli(
        "features", "build", synth_dir, "--task", "toci_refractory", "--landmark", "first_toci"
    )
    assert toci.exit_code == 0, toci.stderr
    assert "siltuximab" in toci.stdout  # first-line siltuximab patients are excluded and counted


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--landmark", "36.5"), "landmark '36.5' is not valid"),
        (("--landmark", "400"), "whole hours from 0 to 336"),
        (("--task", "sepsis"), "unknown task"),
        (("--out", "x.xlsx"), ".parquet or .csv"),
    ],
)
def test_cli_user_errors(synth_dir, tmp_path, cli, args, message):
    args = tuple(str(tmp_path / a) if a.endswith(".xlsx") else a for a in args)
    r = cli("features", "build", synth_dir, *args)
    assert r.exit_code == 2 and message in r.stderr and "Traceback" not in r.stderr
    assert not list(tmp_path.iterdir())


def test_missing_folder_is_a_user_error(tmp_path, cli):
    r = cli("features", "build", tmp_path / "nope", "--out", tmp_path / "t.parquet")
    assert r.exit_code == 2 and not (tmp_path / "t.parquet").exists()


def test_synthetic_cohort_all_landmarks_and_grade_derivation(synth_dir):
    from features.io import load_cohort

    cohort = load_cohort(synth_dir)
    tables = build_landmarks(cohort, "severe_crs")
    eligible = [t.summary["eligible"] for t in tables.values()]
    assert eligible == sorted(eligible, reverse=True) and eligible[0] == cohort.n_patients
    assert all(t.n_events > 0 for t in tables.values())
    toci = build_features(cohort, "toci_refractory", "first_toci")
    assert 0 < toci.n_events < len(toci.X)
    # without recorded grades, ASTCT 2019 grades derived from the simulator's support rows
    # give the same eligibility and labels at every landmark
    ev = cohort.events
    no_grades = dataclasses.replace(
        cohort, events=ev[~ev["event"].astype(str).isin(["crs_onset", "crs_grade", "crs_resolved"])]
    )
    derived = build_landmarks(no_grades, "severe_crs")
    for name, t in tables.items():
        assert derived[name].ids.tolist() == t.ids.tolist(), name
        assert derived[name].y.tolist() == t.y.tolist(), name
        assert derived[name].summary["exclusions"] == t.summary["exclusions"], name


def _only_pre_infusion_days(cohort, table) -> None:
    """car22's 0 h table holds no value from day 0 or later, for any analyte (issue 11
    acceptance): a day-granular day d is known at 24·d + 24 h and an exact draw on day 0 at
    [0, 24) h, so every value at ≤ 0 h lies strictly before the infusion day's start, and each
    analyte's 0 h features exist exactly for the patients with such a value."""
    m = cohort.measurements
    pre = m[m["hours_from_infusion"] <= 0]
    assert (pre["hours_from_infusion"] < 0).all(), sorted(set(pre["analyte"]))
    ids = table.ids.astype(str).to_numpy()
    checked = 0
    for analyte in m["analyte"].astype(str).unique():
        with_pre = set(pre.loc[pre["analyte"] == analyte, "patient_id"].astype(str))
        for col, has in ((f"{analyte}_pre_ld", "value"), (f"{analyte}_missing", "flag")):
            if col not in table.X.columns:
                continue
            known = table.X[col].notna() if has == "value" else table.X[col].eq(0)
            assert set(ids[known.to_numpy()]) == with_pre & set(ids), (analyte, col)
            checked += 1
    assert checked >= 10  # the cytokines and the pre-lymphodepletion labs


@pytest.mark.car22
def test_real_car22_cohort(car22_dir, tmp_path, cli):
    from features.importer import import_cohort
    from features.io import load_cohort

    mapping = REPO / "experiments" / "mappings" / "car22.yaml"
    import_cohort(mapping, sorted(car22_dir.iterdir()), tmp_path / "car22")
    cohort = load_cohort(tmp_path / "car22")
    key = pd.read_csv(car22_dir / "outcomes_id_key.csv")
    severe = int((pd.to_numeric(key["Max Grade CRS_ASBMT"], errors="coerce") >= 3).sum())
    for landmark in ("0h", "24h", "48h", "72h"):
        t = build_features(cohort, "severe_crs", landmark)
        s = t.summary
        assert s["eligible"] + sum(s["exclusions"].values()) == 59
        assert t.n_events <= severe
        # absent analytes are missing, never invented; daily cytokines are there
        assert t.X["platelets_pre_ld"].isna().all() and t.X["age_years"].isna().all()
        assert t.X["easix_pre_ld"].isna().all() and (t.X["platelets_missing"] == 1).all()
        if landmark == "0h":  # day-0 cytokines are known at the end of day 0 (issue 11 §1)
            assert t.X["il6_missing"].eq(1).all()
            _only_pre_infusion_days(cohort, t)
        else:
            assert t.X["il6_missing"].eq(0).mean() > 0.5
    assert build_features(cohort, "severe_crs", "0h").n_events == severe
    r = cli(
        "features", "build", tmp_path / "car22", "--landmark", "48", "--out", tmp_path / "t.csv"
    )
    assert r.exit_code == 0 and "crs_max_grade" in r.stdout
    toci = cli(
        "features",
        "build",
        tmp_path / "car22",
        "--task",
        "toci_refractory",
        "--landmark",
        "first_toci",
        "--out",
        tmp_path / "toci.parquet",
    )
    assert toci.exit_code == 2 and "tocilizumab time unknown" in toci.stderr
    assert not (tmp_path / "toci.parquet").exists()
