"""Issue 11 §5: an IL-6 value measured after tocilizumab says so in the service's reasons and in
``crs-risk explain``'s explanation, even when the model does not take ``il6_after_toci`` as an
input (the compact clinical set does not): the flag comes from the full feature row.

Models are fitted here on the compact after-infusion set alone (no MLflow store) and served
through ``serving.scoring.score_request``, the single route's own code.
"""

from __future__ import annotations

import pytest

from features.build import build_features
from features.catalog import AFTER_TOCI_NOTE, catalog_for
from features.io import load_cohort, write_cohort
from features.synth import simulate
from serving.examples import to_request
from serving.loading import Snapshot
from serving.schemas import RiskRequest
from serving.scoring import score_request
from tests.serving.fast_models import loaded_model
from tests.training.test_explain import fit
from training.explain import ModelExplainer
from training.parsimony import compact_columns

TASK, LANDMARK = "severe_crs", "48h"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    sc = simulate(240, seed=21)
    folder = tmp_path_factory.mktemp("after-toci") / "cohort"
    write_cohort(folder, sc.patients, sc.measurements, sc.events)
    table = build_features(load_cohort(folder), TASK, LANDMARK)
    catalog = catalog_for(TASK, LANDMARK)
    cols = compact_columns(TASK, LANDMARK, catalog)
    y = table.y.to_numpy(dtype=int)
    model = fit("logreg", table.X[cols], y, catalog, None)  # inputs: the compact set only
    loaded = loaded_model(TASK, LANDMARK, model, table.X, y)
    assert "il6_after_toci" not in loaded.columns and "il6_max" in loaded.columns
    snap = Snapshot(models={(TASK, LANDMARK): loaded}, missing=(), loaded_at="", tracking_uri="")
    return sc, table, snap


def _il6_text(resp) -> str:
    (r,) = [r for r in resp.results if r.task == TASK and r.landmark == LANDMARK]
    assert r.status == "scored", r.reason
    (c,) = [c for c in r.contributions if c.variable == "il6"]
    return c.value_text


def _request(sc, pid: str) -> RiskRequest:
    pats = sc.patients.set_index("patient_id", drop=False)
    body = to_request(
        pats.loc[pid],
        sc.measurements[sc.measurements["patient_id"] == pid],
        sc.events[sc.events["patient_id"] == pid],
        48.0,
    )
    body.update(landmark=LANDMARK, explain=True, top_k=30)
    return RiskRequest.model_validate(body)


def test_the_service_says_il6_was_measured_after_tocilizumab(served):
    sc, table, snap = served
    X, ids = table.X, table.ids.astype(str).to_numpy()
    measured = X["il6_max"].notna().to_numpy()
    after = ids[measured & (X["il6_after_toci"] == 1).to_numpy()]
    before = ids[measured & (X["toci_given"] == 0).to_numpy()]
    assert len(after) >= 2 and len(before) >= 2, "the cohort should hold both kinds of patient"
    for pid in after[:3]:
        assert _il6_text(score_request(snap, _request(sc, pid), "t")).endswith(
            f"({AFTER_TOCI_NOTE})"
        )
    for pid in before[:3]:
        assert "tocilizumab" not in _il6_text(score_request(snap, _request(sc, pid), "t"))


def test_explain_entry_point_reads_the_flag_from_the_full_row(served):
    """``crs-risk explain`` passes the patient's full feature row (``explain_report``)."""
    _, table, snap = served
    ex = ModelExplainer(snap.models[(TASK, LANDMARK)].model, catalog_for(TASK, LANDMARK))
    i = int((table.X["il6_after_toci"] == 1).to_numpy().argmax())
    e = ex.explain_row(table.X.iloc[[i]], top=len(ex.variables))
    (c,) = [c for c in e.contributions if c.variable == "il6"]
    assert c.value_text.endswith(f"({AFTER_TOCI_NOTE})")
