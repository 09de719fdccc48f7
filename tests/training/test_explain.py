"""SHAP explanations: additivity per model family, grouping to clinical variables, the NumPy fast
path, a known driver found first, no identifier in MLflow, and ``crs-risk explain``."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from features.build import build_features
from features.catalog import CATALOG, after_tocilizumab_note, catalog_for, variable_of
from features.errors import CrsRiskError
from features.io import load_cohort, write_cohort
from features.synth import simulate
from training.explain import ADDITIVITY_TOL, ModelExplainer
from training.explain_attribution import format_value
from training.explain_global import global_importance
from training.models import build_model
from training.sink import log_global_explanations

LANDMARK = "48h"
DRIVER = "il6"  # the variable that drives risk in the known-driver cohort
FAMILIES = {
    "logreg": "logistic",
    "xgboost": "xgboost",
    "m_easix": "log_logistic",
    "cytokine3": "log_logistic",
    "fever_mcp1": "rule",
    "high_burden": "rule",
}


@pytest.fixture(scope="module")
def cohort_dir(tmp_path_factory) -> Path:
    sc = simulate(160, seed=11)
    folder = tmp_path_factory.mktemp("explain") / "cohort"
    write_cohort(folder, sc.patients, sc.measurements, sc.events)
    return folder


@pytest.fixture(scope="module")
def table(cohort_dir):
    return build_features(load_cohort(cohort_dir), "severe_crs", LANDMARK)


@pytest.fixture(scope="module")
def catalog():
    return catalog_for("severe_crs", LANDMARK)


def fit(
    name: str,
    X: pd.DataFrame,
    y: np.ndarray,
    catalog,
    calibration: str | None = "auto",
    *,
    landmark: str = LANDMARK,
    n_estimators: int = 60,
    max_depth: int = 2,
    columns: list[str] | None = None,
):
    """The logged object (``TunedCalibratedClassifier.model_``) of a quickly tuned model.

    ``columns``: the subset the model uses (as ``training.parsimony`` restricts models to the
    compact clinical set): the pipeline then starts with a column-selection step and still
    takes every column of ``X``."""
    params = {"n_estimators": n_estimators} if name == "xgboost" else {}
    grid = (
        {"C": [0.1]}
        if name == "logreg"
        else {"max_depth": [max_depth]}
        if name == "xgboost"
        else None
    )
    built = build_model(
        name,
        X=X,
        catalog=catalog,
        landmark=landmark,
        columns=list(X.columns) if columns is None else list(columns),
        feature_set="all" if columns is None else "compact",
        params=params,
        grid=grid,
        calibration=calibration,
        monotone=True,
        inner_folds=2,
        scoring="neg_log_loss",
        seed=3,
    )
    assert not isinstance(built, str), built
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return built.estimator.fit(X, y).model_


@pytest.fixture(scope="module")
def models(table, catalog):
    y = table.y.to_numpy(dtype=int)
    out = {name: fit(name, table.X, y, catalog) for name in FAMILIES}
    out["xgboost_uncalibrated"] = fit("xgboost", table.X, y, catalog, calibration="none")
    return out


@pytest.mark.parametrize("name", [*FAMILIES, "xgboost_uncalibrated"])
def test_shap_adds_up_to_the_models_log_odds(name, models, table, catalog):
    model = models[name]
    ex = ModelExplainer(model, catalog)
    assert ex.family == FAMILIES.get(name, "xgboost")
    res = ex.explain(table.X)
    # the model's log-odds, computed here independently of training.explain
    est = (
        model.calibrated_classifiers_[0].estimator
        if hasattr(model, "calibrated_classifiers_")
        else model
    )
    if ex.family == "xgboost":
        margin = est[-1].predict(est[:-1].transform(table.X), output_margin=True)
    elif ex.family == "logistic":
        margin = est.decision_function(table.X)
    else:
        p = est.predict_proba(table.X)[:, 1]
        margin = np.log(p / (1 - p))
    total = res.base_values + res.values.sum(axis=1)
    assert np.max(np.abs(total - margin)) <= ADDITIVITY_TOL
    assert res.additivity_error() <= ADDITIVITY_TOL
    # the reported probability is the logged model's
    np.testing.assert_allclose(res.probability, model.predict_proba(table.X)[:, 1], atol=1e-12)
    # grouped contributions sum to the ungrouped ones, variable by variable
    by_var = (
        pd.DataFrame(res.values, columns=res.columns)
        .T.groupby(np.asarray(res.column_variables))
        .sum()
        .T
    )
    grouped = res.grouped_frame()
    np.testing.assert_allclose(grouped[by_var.columns], by_var, atol=1e-10)
    np.testing.assert_allclose(grouped.sum(axis=1), res.values.sum(axis=1), atol=1e-10)


def test_rule_contributions_are_the_rules_log_odds_ratio(models, table, catalog):
    ex = ModelExplainer(models["fever_mcp1"], catalog)
    res = ex.explain(table.X)
    rule = models["fever_mcp1"]
    met = rule.predict(table.X).astype(bool)
    r0, r1 = rule.rates_
    delta = math.log(r1 / (1 - r1)) - math.log(r0 / (1 - r0))
    assert np.allclose(res.values[~met], 0.0)
    assert np.allclose(res.values[met].sum(axis=1), delta)
    assert np.allclose(res.base_values, math.log(r0 / (1 - r0)))


def test_m_easix_is_one_composite_variable(models, table, catalog):
    ex = ModelExplainer(models["m_easix"], catalog)
    assert ex.variables == ["m_easix"]
    e = ex.explain_row(table.X.iloc[0])
    (c,) = e.contributions
    assert c.label == "m-EASIX" and c.feature == "m_easix_score"
    row = table.X.iloc[0]
    if row[["ldh_last", "crp_last", "platelets_last"]].notna().all():
        score = row["ldh_last"] * row["crp_last"] / 10 / row["platelets_last"]
        assert math.isclose(c.value, score)


@pytest.mark.parametrize("name", ["logreg", "xgboost"])
def test_numpy_fast_path_equals_the_pipeline(name, models, table, catalog):
    model = models[name]
    ex = ModelExplainer(model, catalog)
    assert ex._ops is not None, "the preprocessing should compile to NumPy"
    pipe = model.calibrated_classifiers_[0].estimator
    expected = pipe[:-1].transform(table.X).to_numpy(dtype=float)
    got = ex.transform(table.X.to_numpy(dtype=float))
    assert got.shape == expected.shape
    assert np.array_equal(got, expected, equal_nan=True)
    assert ex.columns == list(pipe[:-1].get_feature_names_out())


@pytest.mark.parametrize("name", ["logreg", "xgboost"])
def test_numpy_fast_path_covers_the_compact_set_selection(name, table, catalog):
    """Models restricted to the compact clinical set (``training.parsimony``) select their
    columns in a fitted ``ColumnTransformer``, whose 'passthrough' scikit-learn stores as an
    identity ``FunctionTransformer``: the NumPy path must still compile and be bit-identical."""
    from training.parsimony import compact_columns

    cols = compact_columns("severe_crs", LANDMARK, catalog)
    model = fit(name, table.X, table.y.to_numpy(dtype=int), catalog, "sigmoid", columns=cols)
    ex = ModelExplainer(model, catalog)
    assert ex._ops is not None, ex.unsupported
    assert ex.input_columns == list(table.X.columns) and len(ex.input_columns) > len(cols)
    pipe = model.calibrated_classifiers_[0].estimator
    assert pipe.steps[0][0] == "select"
    expected = pipe[:-1].transform(table.X).to_numpy(dtype=float)
    assert np.array_equal(ex.transform(table.X.to_numpy(dtype=float)), expected, equal_nan=True)


@pytest.mark.parametrize("name", [*FAMILIES])
def test_explain_row_matches_the_batch(name, models, table, catalog):
    ex = ModelExplainer(models[name], catalog)
    res = ex.explain(table.X)
    for i in (0, 7, len(table.X) - 1):
        row = table.X.iloc[i]
        for given in (row, row.to_dict(), table.X.iloc[[i]], ex.as_array(table.X.iloc[[i]])[0]):
            e = ex.explain_row(given, top=len(ex.variables))
            assert math.isclose(e.probability, res.probability[i], abs_tol=1e-6)
            assert math.isclose(e.log_odds, res.margin[i], abs_tol=ADDITIVITY_TOL)
            assert math.isclose(e.base_value, res.base_values[i], abs_tol=1e-6)
            total = e.base_value + sum(c.log_odds for c in e.contributions) + e.other_log_odds
            assert math.isclose(total, e.log_odds, abs_tol=1e-9)
            expected = dict(zip(res.variables, res.grouped[i], strict=True))
            for c in e.contributions:
                assert math.isclose(c.log_odds, expected[c.variable], abs_tol=1e-6)


def test_contributions_speak_clinical_language(models, table, catalog):
    ex = ModelExplainer(models["logreg"], catalog)
    X = table.X
    for i in range(10):
        e = ex.explain_row(X.iloc[i], top=6)
        assert len(e.contributions) == 6 and e.n_other == len(ex.variables) - 6
        sizes = [abs(c.log_odds) for c in e.contributions]
        assert sizes == sorted(sizes, reverse=True)
        for c in e.contributions:
            assert " → " in c.text and c.text.endswith("log-odds")
            if c.variable == "product":  # a one-hot variable shows the patient's level
                on = [k for k in X.columns if k.startswith("product_") and X.iloc[i][k] == 1]
                expected = CATALOG[on[0]].label.split(": ")[1] if on else "other"
                assert c.value_text == expected and c.feature_label == "CAR T product"
                continue
            spec = CATALOG[c.feature]
            assert variable_of(c.feature) == c.variable
            assert c.feature_label == spec.label
            note = after_tocilizumab_note(c.feature, X.iloc[i])  # issue 11 §5
            assert c.value_text == format_value(spec, X.iloc[i][c.feature]) + note
            assert c.text.startswith(f"{spec.label}: {c.value_text} → ")


def test_a_cytokine_measured_after_tocilizumab_says_so(models, table, catalog):
    """Issue 11 §5: IL-6 rises when tocilizumab blocks its receptor; an explanation of an IL-6
    value measured after a dose says so, the same value before a dose does not."""
    ex = ModelExplainer(models["logreg"], catalog)
    row = table.X.iloc[0].copy()
    row["il6_max"] = 5000.0
    texts = {}
    for flag in (0.0, 1.0):
        row["toci_given"] = row["il6_after_toci"] = flag
        e = ex.explain_row(row, top=len(ex.variables))
        texts[flag] = next(c.value_text for c in e.contributions if c.variable == "il6")
    assert texts[1.0].endswith("(measured after tocilizumab)")
    assert "tocilizumab" not in texts[0.0]


def test_format_value_uses_catalog_units():
    assert format_value(CATALOG["il6_max"], 1250.0) == "1,250 pg/mL"
    assert format_value(CATALOG["il6_max"], float("nan")) == "not measured"
    assert format_value(CATALOG["temperature_max"], 38.94) == "38.9 °C"
    assert format_value(CATALOG["fever_present"], 1.0) == "yes"
    assert format_value(CATALOG["crs_max_grade_so_far"], 2.0) == "grade 2"
    assert format_value(CATALOG["il6_fold_change"], 12.0) == "×12.0"
    assert format_value(CATALOG["age_years"], float("nan")) == "unknown"


def test_bad_rows_are_refused(models, catalog, table):
    ex = ModelExplainer(models["xgboost"], catalog)
    with pytest.raises(CrsRiskError, match="lacks"):
        ex.explain_row(table.X.iloc[0].drop("il6_max").to_dict())
    with pytest.raises(CrsRiskError, match="columns"):
        ex.explain_row(np.zeros(5))
    with pytest.raises(CrsRiskError, match="one patient"):
        ex.explain_row(table.X.iloc[:2])


def known_driver_y(X: pd.DataFrame, seed: int = 5) -> np.ndarray:
    """Outcome driven by IL-6 alone: logit = −1.5 + 3·z(log10 IL-6 peak) (missing → average)."""
    z = np.log10(X["il6_max"].to_numpy(dtype=float) + 1)
    z = (z - np.nanmean(z)) / np.nanstd(z)
    z = np.nan_to_num(z, nan=0.0)
    rng = np.random.default_rng(seed)
    return (rng.random(len(X)) < expit(-1.5 + 3.0 * z)).astype(int)


@pytest.mark.parametrize("name", ["logreg", "xgboost"])
def test_the_variable_that_drives_risk_ranks_first(name, table, catalog):
    y = known_driver_y(table.X)
    assert 10 <= y.sum() <= len(y) - 10
    model = fit(name, table.X, y, catalog)
    ex = ModelExplainer(model, catalog)
    importance = global_importance(ex, ex.explain(table.X))
    assert importance.iloc[0]["variable"] == DRIVER, importance.head(5).to_string()
    assert importance.iloc[0]["label"] == "IL-6"
    assert importance.iloc[0]["direction"] == 1  # higher IL-6 → higher risk
    # the driver is spread over derived columns (last, max, fold change, indicators …)
    assert sum(v == DRIVER for v in ex.column_variables) > 2


# --- MLflow ----------------------------------------------------------------------------------
def test_global_artifacts_carry_no_patient_identifier(tmp_path, models, table, catalog):
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri)
    exp_id = client.create_experiment("explain", artifact_location=(tmp_path / "art").as_uri())
    mlflow.set_tracking_uri(uri)
    with mlflow.start_run(experiment_id=exp_id) as run:
        table_xgb = log_global_explanations(models["xgboost"], table.X, catalog, title="t")
    arts = {a.path for a in client.list_artifacts(run.info.run_id, "shap")}
    assert arts == {
        "shap/importance.csv",
        "shap/importance.png",
        "shap/beeswarm.png",
        "shap/dependence.png",
    }
    # importance.csv: one row per clinical variable, aggregates only
    local = Path(client.download_artifacts(run.info.run_id, "shap", str(tmp_path / "dl")))
    csv = pd.read_csv(local / "importance.csv")
    assert len(csv) == csv["variable"].nunique() == len(table_xgb)
    assert list(csv["variable"]) == list(table_xgb["variable"])
    # scan every artifact byte, param, tag and metric for every identifier
    ids = set(table.ids.astype(str))
    assert ids
    blobs = [p.read_bytes() for p in (tmp_path / "art").rglob("*") if p.is_file()]
    assert blobs
    for pid in ids:
        needle = pid.encode()
        assert not any(needle in b for b in blobs), "a patient identifier reached MLflow"
    data = client.get_run(run.info.run_id).data
    text = " ".join([*data.params.values(), *data.tags.values(), *map(str, data.metrics)])
    assert not any(pid in text for pid in ids)
    # a real cohort: aggregate views only — no figure with one point per patient
    with mlflow.start_run(experiment_id=exp_id) as real:
        log_global_explanations(models["xgboost"], table.X, catalog, title="t", per_patient=False)
    arts = {a.path for a in client.list_artifacts(real.info.run_id, "shap")}
    assert arts == {"shap/importance.csv", "shap/importance.png"}


def test_log_global_explanations_needs_a_run(models, table, catalog):
    import mlflow

    assert mlflow.active_run() is None
    with pytest.raises(RuntimeError, match="active MLflow run"):
        log_global_explanations(models["logreg"], table.X, catalog)


def test_cli_explain_writes_a_local_report(tmp_path, cli, models, table, cohort_dir):
    import mlflow

    from training.sink import log_model

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri, uri)
    exp_id = client.create_experiment("crs-severe", artifact_location=(tmp_path / "a").as_uri())
    mlflow.set_tracking_uri(uri)
    with mlflow.start_run(experiment_id=exp_id) as run:
        info = log_model(models["xgboost"], table.X.iloc[:2])
    client.create_registered_model("crs-severe-48h")
    mv = client.create_model_version(
        "crs-severe-48h",
        source=f"models:/{info.model_id}",
        run_id=run.info.run_id,
        tags={"task": "severe_crs", "landmark": LANDMARK, "model": "xgboost"},
    )
    client.set_registered_model_alias("crs-severe-48h", "champion", mv.version)
    pid = str(table.ids.iloc[3])
    model_uri = "models:/crs-severe-48h@champion"
    base = ("explain", "--model", model_uri, "--cohort", cohort_dir, "--tracking-uri", uri)

    page = tmp_path / "report.html"
    res = cli(*base, "--patient", pid, "--out", page, "--top", "5")
    assert res.exit_code == 0, res.stderr
    assert "Risk of severe CRS" in res.stdout and "log-odds" in res.stdout
    assert pid not in res.stdout  # the identifier goes into the local file only
    html = page.read_text(encoding="utf-8")
    assert pid in html and "data:image/png;base64," in html
    p = models["xgboost"].predict_proba(table.X.iloc[[3]])[0, 1]
    assert f"{100 * p:.0f}%" in html
    assert html.count("<tr>") == 1 + 5 + 1  # header, 5 variables, "other"

    png = tmp_path / "waterfall.png"
    assert cli(*base, "--patient", pid, "--out", png).exit_code == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    missing = cli(*base, "--patient", "NO-SUCH-PATIENT")
    assert missing.exit_code == 2 and "no patient with that identifier" in missing.stderr
    assert "NO-SUCH-PATIENT" not in missing.stderr
    bad = cli(*base, "--patient", pid, "--out", tmp_path / "x.pdf")
    assert bad.exit_code == 2 and ".html or .png" in bad.stderr
    assert not list(tmp_path.glob("x.pdf"))
