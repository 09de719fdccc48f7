"""The real service (``crs-risk serve`` process) on the quickstart store: API, audit, reload.

End-to-end acceptance: scores and explanations over HTTP equal in-process predictions made with
the same registered model version and the same ``features``/``training.explain`` code; after the
champion alias moves to another version and ``/v1/models/reload``, responses name the new one.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pandas as pd
import pytest

from tests.serving.conftest import Service

pytestmark = pytest.mark.slow


# --- in process ------------------------------------------------------------------------------
def _cohort_of(request: dict, folder: Path):
    """The request's patient written as a real cohort folder and loaded by features.io."""
    from features.io import load_cohort, write_cohort

    pid = "P1"
    patient = {"patient_id": pid, "center": "C", **request["patient"]}
    meas = pd.DataFrame(
        [{"patient_id": pid, **m} for m in request["measurements"]],
        columns=["patient_id", "hours_from_infusion", "analyte", "value", "unit", "qualifier"],
    )
    ev = pd.DataFrame(
        [{"patient_id": pid, **e} for e in request["events"]],
        columns=["patient_id", "hours_from_infusion", "event", "grade", "dose_mg_per_kg"],
    )
    ev["grade"] = ev["grade"].astype("Int64")
    write_cohort(folder, pd.DataFrame([patient]), meas, ev, fmt="parquet")
    return load_cohort(folder)


def _in_process(store_uri: str, cohort, task: str, landmark: str, name: str, version: str):
    """(explain_row result, predict_proba) of registered ``name`` v``version`` in process."""
    import mlflow

    from features.build import build_patient_features
    from training.explain import ModelExplainer

    mlflow.set_tracking_uri(store_uri)
    model = mlflow.sklearn.load_model(f"models:/{name}/{version}")
    table = build_patient_features(cohort, task, landmark)
    assert len(table.X) == 1
    explainer = ModelExplainer(model)
    X = table.X[explainer.input_columns]
    return explainer.explain_row(X.to_numpy(dtype=float), top=6), model.predict_proba(X)[0, 1]


def test_scores_and_explanations_match_in_process(service: Service, store_uri, examples, tmp_path):
    checked = 0
    with service.client() as c:
        for k, ex in enumerate(examples):
            body = ex["request"]
            resp = c.post("/v1/risk", json=body)
            assert resp.status_code == 200, resp.text
            data = resp.json()
            cohort = _cohort_of(body, tmp_path / f"p{k}")
            batch = c.post(
                "/v1/risk/batch", json={"patients": [{**body, "landmark": data["landmark"]}]}
            )
            assert batch.status_code == 200, batch.text
            # one result per (task, landmark): toci_refractory is scored at the anti-IL-6
            # decision and at the first dose
            batch_results = {
                (r["task"], r["landmark"]): r for r in batch.json()["items"][0]["results"]
            }
            for r in data["results"]:
                if r["status"] != "scored":
                    assert r["reason"] and r["probability"] is None
                    continue
                e, p = _in_process(
                    store_uri, cohort, r["task"], r["landmark"], r["model"], r["version"]
                )
                # one probability path: the same bits alone and in a batch, the logged model's
                # predict_proba to float rounding; SHAP (the reasons) from the same explainer
                same = batch_results[(r["task"], r["landmark"])]
                assert same["probability"] == r["probability"]
                assert abs(r["probability"] - p) <= 1e-12
                assert r["base_value"] == e.base_value and r["log_odds"] == e.log_odds
                shown = [*r["contributions"], *r["missing_effects"]]
                assert sorted(x["contribution"] for x in shown) == sorted(
                    x.log_odds for x in e.contributions
                )
                assert all("log-odds" not in x["text"] for x in shown)
                assert r["interval"]["low"] <= r["interval"]["high"]
                assert "in 100" in r["summary"] and r["horizon"]
                checked += 1
    assert checked >= 3


def test_health_auth_and_error_contract(service: Service, examples):
    assert httpx.get(service.url + "/healthz").json() == {"status": "alive"}
    assert httpx.get(service.url + "/readyz").status_code == 200
    assert httpx.get(service.url + "/v1/models").status_code == 401
    bad_token = {"Authorization": "Bearer not-the-token-at-all"}
    assert httpx.get(service.url + "/v1/models", headers=bad_token).status_code == 401
    with service.client() as c:
        assert c.get("/no/such/route").status_code == 404
        body = dict(examples[0]["request"])
        body["patient"] = {**body["patient"], "age_years": 400, "sex": "X"}
        body["measurements"] = [
            {"analyte": "il6", "hours_from_infusion": 10, "value": True, "unit": "pg/mL"},
            {"analyte": "unobtainium", "hours_from_infusion": 10, "value": 1, "unit": "pg/mL"},
        ]
        r = c.post("/v1/risk", json=body)
        assert r.status_code == 422
        locs = {tuple(d["loc"]) for d in r.json()["detail"]}
        assert {
            ("body", "patient", "age_years"),
            ("body", "patient", "sex"),
            ("body", "measurements", 0, "value"),
            ("body", "measurements", 1, "analyte"),
        } <= locs
        assert "Traceback" not in r.text
        r = c.post("/v1/risk", content=b"{not json", headers={"Content-Type": "application/json"})
        assert r.status_code == 422
        big = b'{"patient": {}, "pad": "' + b"x" * (17 * 1024 * 1024) + b'"}'
        r = c.post("/v1/risk", content=big, headers={"Content-Type": "application/json"})
        assert r.status_code == 413


def test_the_fast_route_and_fastapis_route_answer_alike(service: Service, examples):
    """``serving.routes.risk_fast`` on the real service: a JSON body (the fast route) and the
    same body as ``+json`` (FastAPI's route) get the same answer, errors included."""
    bad = dict(examples[0]["request"])
    bad["top_k"] = "many"
    bodies = [e["request"] for e in examples[:3]] + [bad, {}]
    with service.client() as c:
        for body in bodies:
            raw = json.dumps(body).encode()
            answers = []
            for ctype in ("application/json", "application/vnd.crs-risk+json"):
                r = c.post("/v1/risk", content=raw, headers={"Content-Type": ctype})
                answer = r.json()
                answer.pop("request_id", None)
                answers.append((r.status_code, answer))
            assert answers[0] == answers[1]
            assert answers[0][0] == (422 if body is bad else 200)


def test_models_listing(service: Service):
    with service.client() as c:
        data = c.get("/v1/models").json()
    names = {m["name"] for m in data["models"]}
    assert "crs-toci-refractory-first-toci" in names
    assert any(n.startswith("crs-severe-") for n in names)
    for m in data["models"]:
        assert m["alias"] == "champion" and m["version"].isdigit()
        assert m["cohort_digest"] and len(m["thresholds"]) >= 1
        auroc = m["metrics"]["auroc"]
        assert auroc["ci_low"] <= auroc["value"] <= auroc["ci_high"]


def test_batch_json_and_csv(service: Service, examples):
    bodies = [e["request"] for e in examples]
    with service.client() as c:
        single = [c.post("/v1/risk", json=b).json() for b in bodies]
        r = c.post("/v1/risk/batch", json={"patients": bodies})
        assert r.status_code == 200, r.text
        items = r.json()["items"]
        assert [i["patient_ref"] for i in items] == [b["patient_ref"] for b in bodies]
        for s, item in zip(single, items, strict=True):
            assert item["landmark"] == s["landmark"]
            for a, b in zip(s["results"], item["results"], strict=True):
                assert a["eligible"] == b["eligible"] and a["version"] == b["version"]
                if a["eligible"]:
                    assert abs(a["probability"] - b["probability"]) < 1e-6
                    assert not b["contributions"]  # explanations off by default in a batch
        lines = ["patient_ref,record,hours_from_infusion,analyte,value,unit,event,grade,age_years"]
        b0 = bodies[0]
        lines.append(f"X,patient,,,,,,,{b0['patient']['age_years']}")
        for m in b0["measurements"]:
            lines.append(
                f"X,measurement,{m['hours_from_infusion']},{m['analyte']},{m['value']},"
                f"{m['unit']},,,"
            )
        r = c.post(
            "/v1/risk/batch",
            content="\n".join(lines).encode(),
            headers={"Content-Type": "text/csv"},
        )
        assert r.status_code == 200, r.text
        assert r.json()["items"][0]["patient_ref"] == "X"
        r = c.post(
            "/v1/risk/batch",
            content=b"patient_ref,record,value\nX,measurement,abc\n",
            headers={"Content-Type": "text/csv"},
        )
        assert r.status_code == 422
        r = c.post("/v1/risk/batch", content=b"<xml/>", headers={"Content-Type": "text/xml"})
        assert r.status_code == 415


def test_audit_log_has_one_record_per_score_and_no_identifiers(service: Service, examples):
    con = sqlite3.connect(f"file:{service.audit_db}?mode=ro", uri=True)
    before = con.execute("SELECT count(*) FROM scores").fetchone()[0]
    ref = "MRN-0099887766"
    with service.client() as c:
        body = {**examples[0]["request"], "patient_ref": ref}
        rid = c.post("/v1/risk", json=body).json()["request_id"]
        c.post("/v1/risk/batch", json={"patients": [body, body]})
    rows = con.execute(
        "SELECT request_id, patient_hash, model_versions, input_digest, outputs FROM scores "
        "ORDER BY id"
    ).fetchall()
    assert len(rows) == before + 3
    mine = [r for r in rows if r[0] == rid]
    assert len(mine) == 1 and mine[0][1] and mine[0][1] != ref and len(mine[0][3]) == 64
    assert rows[-1][1] == mine[0][1]  # the same reference hashes the same way
    assert rows[-1][3] == rows[-2][3] == mine[0][3]  # one patient, one input digest, any route
    con.close()
    for path in service.audit_db.parent.glob(service.audit_db.name + "*"):
        assert ref.encode() not in path.read_bytes()
    assert ref not in service.log.read_text()


def test_32_concurrent_clients_without_errors(service: Service, examples):
    bodies = [e["request"] for e in examples]

    def work(i: int) -> list[int]:
        with service.client() as c:
            return [
                c.post("/v1/risk", json=bodies[(i + k) % len(bodies)]).status_code for k in range(3)
            ]

    with ThreadPoolExecutor(32) as pool:
        codes = [code for batch in pool.map(work, range(32)) for code in batch]
    assert codes == [200] * len(codes)


def _other_version(store_uri: str, name: str) -> tuple[str, str]:
    """(current champion version, a new version of ``name`` from a different trained model)."""
    import mlflow

    # create_model_version resolves ``models:/<id>`` through the *global* tracking URI
    mlflow.set_tracking_uri(store_uri)
    mlflow.set_registry_uri(store_uri)
    client = mlflow.MlflowClient(tracking_uri=store_uri, registry_uri=store_uri)
    current = client.get_model_version_by_alias(name, "champion")
    run = client.get_run(current.run_id)
    exp = run.info.experiment_id
    landmark = run.data.tags["landmark"]
    runs = client.search_runs(
        [exp],
        f"tags.landmark = '{landmark}' and tags.run_type = 'training'",
        max_results=100,
    )
    others = [r for r in runs if r.info.run_id != current.run_id]
    assert others, "the quickstart trains several models per landmark"
    other = others[0]
    models = client.search_logged_models(experiment_ids=[exp])
    model_id = next(m.model_id for m in models if m.source_run_id == other.info.run_id)
    mv = client.create_model_version(
        name, f"models:/{model_id}", run_id=other.info.run_id, model_id=model_id
    )
    return str(current.version), str(mv.version)


def test_reload_switches_to_the_new_champion_without_failing_requests(
    service: Service, store_uri, examples
):
    import mlflow

    name = "crs-toci-refractory-first-toci"
    body = next(
        e["request"]
        for e in examples
        if any(ev["event"] == "tocilizumab" for ev in e["request"]["events"])
    )
    old, new = _other_version(store_uri, name)
    client = mlflow.MlflowClient(tracking_uri=store_uri, registry_uri=store_uri)
    stop = threading.Event()
    codes: list[int] = []

    def hammer() -> None:
        with service.client() as c:
            while not stop.is_set():
                codes.append(c.post("/v1/risk", json=body).status_code)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    try:
        client.set_registered_model_alias(name, "champion", new)
        for t in threads:
            t.start()
        with service.client(timeout=300) as c:
            r = c.post("/v1/models/reload")
            assert r.status_code == 200, r.text
            listed = {m["name"]: m["version"] for m in r.json()["models"]}
            assert listed[name] == new
            res = c.post("/v1/risk", json=body).json()["results"]
            toci = next(x for x in res if x["landmark"] == "first_toci")
            assert toci["version"] == new and toci["model"] == name
    finally:
        stop.set()
        for t in threads:
            if t.is_alive():
                t.join()
        client.set_registered_model_alias(name, "champion", old)
        with service.client(timeout=300) as c:
            assert c.post("/v1/models/reload").status_code == 200
    assert codes and set(codes) == {200}


def test_reload_frees_the_old_models(store_uri: str, tmp_path: Path):
    """The models replaced by a reload are collected (the start-up freeze is undone for them)."""
    import gc
    import weakref

    from fastapi.testclient import TestClient

    from serving.app import create_app
    from serving.state import Settings

    token = "reload-token-0123456789"
    app = create_app(Settings(store_uri, tmp_path / "audit.sqlite", token=token, examples=False))
    auth = {"Authorization": f"Bearer {token}"}
    with TestClient(app) as c:
        # the very first models stay referenced by frames a library keeps from its first import
        # during loading (one-time, bounded); every later generation must be freed
        assert c.post("/v1/models/reload", headers=auth).status_code == 200
        before = app.state.crs.store.snapshot
        gone = [weakref.ref(m.model) for m in before.models.values()]
        del before
        r = c.post("/v1/models/reload", headers=auth)
        assert r.status_code == 200, r.text
        assert gone and all(ref() is None for ref in gone)
        assert gc.isenabled() and gc.get_freeze_count() > 0  # the new models frozen again
