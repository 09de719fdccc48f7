"""Issue 16 acceptance on the real team stack (PostgreSQL + ``mlflow server --app-name
basic-auth``): the quickstart trained with the team user's credentials, every command against
it, two concurrent ``train`` runs, and two service replicas that switch to a promotion together
with zero failed requests under a bounded loopback load.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from .conftest import Service, Team, tiny_experiment

pytestmark = pytest.mark.team


def _champions(team: Team) -> dict[str, str]:
    client = team.client()
    out = {}
    for rm in client.search_registered_models():
        if "champion" in (rm.aliases or {}):
            out[rm.name] = str(rm.aliases["champion"])
    return out


def test_quickstart_and_every_command_against_the_team_stack(team: Team, quickstart: Path):
    champions = _champions(team)
    assert "crs-severe-48h" in champions and "crs-toci-refractory-first-toci" in champions
    out = team.folder / "outputs"
    board = team.run("compare", "--experiment", "crs-severe", "--out", out)
    assert board.returncode == 0, board.stderr[-1500:]
    assert "logreg" in board.stdout
    model = "models:/crs-severe-48h@champion"
    card = team.run("card", model, "--out", out / "card")
    assert card.returncode == 0, card.stderr[-1500:]
    ev = team.run(
        "evaluate", "--model", model, "--cohort", quickstart / "cohort", "--bootstrap", 50
    )
    assert ev.returncode == 0, ev.stderr[-1500:]
    from features.io import load_cohort

    patient = str(load_cohort(quickstart / "cohort").patients["patient_id"].iloc[0])
    ex = team.run(
        "explain",
        *("--model", model, "--cohort", quickstart / "cohort", "--patient", patient),
        *("--out", out / "explain.html"),
    )
    assert ex.returncode == 0, ex.stderr[-1500:]
    # the MLflow UI and its API answer the team user (and nobody without credentials)
    auth = (team.env["MLFLOW_TRACKING_USERNAME"], team.env["MLFLOW_TRACKING_PASSWORD"])
    assert httpx.get(team.uri + "/", auth=auth, timeout=30).status_code == 200
    assert (
        httpx.get(team.uri + "/api/2.0/mlflow/experiments/search?max_results=1").status_code == 401
    )
    runs = httpx.post(
        team.uri + "/ajax-api/2.0/mlflow/runs/search",
        json={"experiment_ids": [team.client().get_experiment_by_name("crs-severe").experiment_id]},
        auth=auth,
        timeout=30,
    )
    assert runs.status_code == 200 and len(runs.json()["runs"]) >= 2


def test_wrong_password_is_one_line_not_a_traceback(team: Team):
    res = team.run("compare", "--experiment", "crs-severe", MLFLOW_TRACKING_PASSWORD="wrong")
    assert res.returncode == 2
    assert "requires authentication (HTTP 401)" in res.stderr and "Traceback" not in res.stderr


def test_two_trains_at_once_both_complete_and_histories_do_not_collide(
    team: Team, quickstart: Path
):
    from training.registry import alias_history

    client = team.client()
    before = len(alias_history(client, "crs-severe-48h"))
    exps = [
        tiny_experiment(team.folder / f"{n}.yaml", quickstart / "cohort", n, ["48h"], c)
        for n, c in (("team-a", 0.1), ("team-b", 1.0))
    ]
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda e: team.run("train", e, "--promote"), exps))
    for res in results:
        assert res.returncode == 0, res.stderr[-1500:]
    hist = alias_history(client, "crs-severe-48h")
    assert len(hist) == before + 2  # both alias moves recorded, neither overwritten
    assert len({h["promotion"] for h in hist[-2:]}) == 2


def _risk_body(svc: Service) -> dict:
    examples = httpx.get(svc.url + "/v1/examples", timeout=30).json()["examples"]
    return examples[0]["request"]


def test_two_replicas_switch_to_a_promotion_together_without_failed_requests(
    team: Team, quickstart: Path, serving: Service, tmp_path: Path
):
    body = _risk_body(serving)
    seen_before = httpx.get(serving.url + "/readyz", timeout=10).json()["versions"]
    stop = threading.Event()
    answers: list[tuple[int, dict[str, str]]] = []

    def load() -> None:  # bounded loopback load: ≈ 20 requests/s, fresh connections
        while not stop.is_set():
            try:
                with httpx.Client(timeout=30) as c:
                    r = c.post(serving.url + "/v1/risk", json=body)
                versions = (
                    {f"crs-severe-{p['landmark']}": p["version"] for p in r.json()["trend"]}
                    if r.status_code == 200
                    else {}
                )
                answers.append((r.status_code, versions))
            except httpx.HTTPError as exc:
                answers.append((0, {"error": type(exc).__name__}))
            time.sleep(0.05)

    threads = [threading.Thread(target=load) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        exp = tiny_experiment(
            team.folder / "promo.yaml", quickstart / "cohort", "promo", ["24h", "48h"], 0.3
        )
        res = team.run("train", exp, "--promote")
        assert res.returncode == 0, res.stderr[-1500:]
        wanted = {
            k: v for k, v in _champions(team).items() if k in ("crs-severe-24h", "crs-severe-48h")
        }
        assert all(wanted[k] != seen_before[k] for k in wanted)
        # every replica holds the new set within poll interval (2 s) + load time
        deadline = time.monotonic() + 120
        switched: dict[int, dict[str, str]] = {}
        while time.monotonic() < deadline:
            with httpx.Client(timeout=10) as c:
                ready = c.get(serving.url + "/readyz", headers={"Connection": "close"}).json()
            held = {k: ready["versions"].get(k) for k in wanted}
            if held == wanted:
                switched[ready["replica"]] = held
            if len(switched) == 2:
                break
            time.sleep(0.2)
        assert len(switched) == 2, f"replicas in step with {wanted}: {switched}; last {ready}"
        time.sleep(1.0)  # a few requests on the new set
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert answers and all(code == 200 for code, _ in answers), [a for a in answers if a[0] != 200][
        :3
    ]
    sets = {(v.get("crs-severe-24h"), v.get("crs-severe-48h")) for _, v in answers}
    old = (seen_before["crs-severe-24h"], seen_before["crs-severe-48h"])
    new = (wanted["crs-severe-24h"], wanted["crs-severe-48h"])
    assert sets <= {old, new}, f"a response mixed versions across landmarks: {sets}"
    assert new in sets
    # both replicas wrote the one audit file (the serving fixture's): one intact chain
    verify = team.run("audit", "verify", tmp_path / "audit.sqlite")
    assert verify.returncode == 0 and "intact" in verify.stdout, verify.stdout + verify.stderr
