"""Promotion rules and all-or-nothing registration (issue 12 §4), on a real SQLite MLflow store.

Faults are injected by a client that raises at the k-th write (every k is tried), so every point
of the two phases is covered; the real `mlflow server` killed mid-registration is in
tests/team/test_team_faults.py.
"""

from __future__ import annotations

import pytest
from requests.exceptions import ConnectionError as RequestsConnectionError

from features.errors import CrsRiskError
from training.champion import Candidate, decide
from training.experiment import ChampionSpec
from training.promotion import Entry, register_and_promote, set_alias_with_history
from training.registry import CHAMPION, PROMOTION_TAG, alias_history, task_definition_digest

RULE = ChampionSpec(slope_band=(0.5, 2.0))
NAMES = ("crs-severe-24h", "crs-severe-48h")
WRITES = (
    "create_registered_model",
    "create_model_version",
    "set_model_version_tag",
    "set_registered_model_tag",
    "set_registered_model_alias",
)


def _cand(auroc=0.8, digest="d1", kind="real", lm="48h", run_id="r", model_id="m"):
    return Candidate(
        "severe_crs",
        lm,
        "logreg",
        "all",
        run_id,
        model_id,
        True,
        {"auroc": auroc, "calibration_slope": 1.0},
        cohort_digest=digest,
        cohort_kind=kind,
        task_definition=task_definition_digest("severe_crs", lm),
    )


def test_decide_follows_the_rule():
    champ = _cand(0.80)
    assert decide(None, _cand(0.5), RULE) == (True, "no champion yet")
    ok, why = decide(champ, _cand(0.85), RULE)
    assert ok and "beats the champion" in why
    ok, why = decide(champ, _cand(0.75), RULE)
    assert not ok and "does not beat" in why
    ok, why = decide(champ, _cand(0.95, digest="d2"), RULE)
    assert not ok and "another cohort" in why
    other_task = _cand(0.95)
    other_task.task_definition = "x"
    assert not decide(champ, other_task, RULE)[0]
    ok, why = decide(champ, _cand(0.99, kind="synthetic"), RULE)
    assert not ok and "synthetic" in why and "--promote" in why
    ok, why = decide(champ, _cand(0.5, kind="synthetic", digest="d9"), RULE, force=True)
    assert ok and "synthetic-cohort model replaces a real-cohort champion" in why


def _logged(client, exp_id, auroc):
    """A real run with metrics and a real LoggedModel for it (what train registers)."""
    run = client.create_run(exp_id)
    client.log_metric(run.info.run_id, "auroc", auroc)
    client.log_metric(run.info.run_id, "calibration_slope", 1.0)
    client.set_tag(run.info.run_id, "calibrated", "true")
    lm = client.create_logged_model(exp_id, name="model", source_run_id=run.info.run_id)
    return run.info.run_id, lm.model_id


def _entries(client, exp_id, auroc, digest="d1", kind="real"):
    out = []
    for name in NAMES:
        lm = name.rsplit("-", 1)[1]
        run_id, model_id = _logged(client, exp_id, auroc)
        c = _cand(auroc, digest, kind, lm, run_id, model_id)
        out.append(Entry(name, c, f"rule winner {auroc}", "desc"))
    return out


def _state(client):
    """Everything a reader sees: aliases, versions and history of every registered model."""
    out = {}
    for rm in client.search_registered_models():
        versions = sorted(str(v.version) for v in client.search_model_versions(f"name='{rm.name}'"))
        out[rm.name] = (dict(rm.aliases or {}), versions, len(alias_history(client, rm.name)))
    return out


def test_versions_always_registered_champion_moves_by_rule(client):
    exp_id = client.create_experiment("promo")
    first = register_and_promote(client, _entries(client, exp_id, 0.80), RULE)
    assert [r.promoted for r in first.registrations] == [True, True]
    v48 = client.get_model_version_by_alias("crs-severe-48h", CHAMPION)
    assert v48.tags["cohort_digest"] == "d1" and v48.tags["cohort_kind"] == "real"
    assert set(eval_set(v48)) == set(NAMES)  # the promotion names the whole set

    worse = register_and_promote(client, _entries(client, exp_id, 0.70), RULE)
    assert not worse.promoted and len(worse.notes()) == 2
    assert "stays at v1" in worse.notes()[0]
    assert str(client.get_model_version_by_alias("crs-severe-48h", CHAMPION).version) == "1"

    synthetic = register_and_promote(client, _entries(client, exp_id, 0.99, kind="synthetic"), RULE)
    assert not synthetic.promoted and "synthetic" in synthetic.notes()[0]

    better = register_and_promote(client, _entries(client, exp_id, 0.90), RULE)
    assert len(better.promoted) == 2
    assert str(client.get_model_version_by_alias("crs-severe-48h", CHAMPION).version) == "4"

    forced = register_and_promote(
        client, _entries(client, exp_id, 0.60, digest="other"), RULE, force=True
    )
    assert len(forced.promoted) == 2
    hist = alias_history(client, "crs-severe-48h")
    assert [h["version"] for h in hist] == ["1", "4", "5"]
    assert hist[-1]["reason"].startswith("--promote given")


def eval_set(mv):
    import json

    return json.loads(mv.tags[PROMOTION_TAG])["set"]


class FailingClient:
    """The real client, except that the k-th write raises (or every call after, if dead)."""

    def __init__(self, client, k, exc):
        self._client, self._k, self._exc, self.writes, self.dead = client, k, exc, 0, False

    def __getattr__(self, name):
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        def call(*args, **kwargs):
            if self.dead:
                raise RequestsConnectionError("Connection refused")
            if name in WRITES:
                self.writes += 1
                if self.writes == self._k:
                    if isinstance(self._exc, RequestsConnectionError):
                        self.dead = True
                    raise self._exc
            return attr(*args, **kwargs)

        return call


def _count_writes(client, exp_id):
    probe = FailingClient(client, 10**9, RuntimeError())
    register_and_promote(probe, _entries(client, exp_id, 0.95), RULE)
    return probe.writes


@pytest.mark.parametrize(
    ("exc", "at"),
    [(RuntimeError("boom"), None), (KeyboardInterrupt(), (2, 7))],  # Ctrl-C: in each phase
)
def test_a_failure_at_any_write_rolls_everything_back(client, exc, at):
    exp_id = client.create_experiment("faults")
    register_and_promote(client, _entries(client, exp_id, 0.80), RULE)
    n = _count_writes(client, exp_id)  # a later, better run promotes (v2 of each)
    assert n == 8  # 2 versions, 2 promotion tags, then 2 × (history entry, alias)
    before = _state(client)
    for k in at or range(1, n + 1):
        entries = _entries(client, exp_id, 0.99)
        with pytest.raises(type(exc)):
            register_and_promote(FailingClient(client, k, exc), entries, RULE)
        assert _state(client) == before, f"write {k} of {n} left a change behind"


def test_a_dead_store_during_rollback_lists_what_was_left(client):
    exp_id = client.create_experiment("dead")
    register_and_promote(client, _entries(client, exp_id, 0.80), RULE)
    n = _count_writes(client, exp_id)
    entries = _entries(client, exp_id, 0.99)
    # the store "dies" at the last write (the second alias move): one alias already moved
    with pytest.raises(CrsRiskError) as info:
        register_and_promote(
            FailingClient(client, n, RequestsConnectionError("Connection refused")), entries, RULE
        )
    text = str(info.value)
    assert "rollback could not finish; left behind:" in text
    assert "@champion moved by this run (should be v" in text
    assert "crs-severe-24h v3" in text and "\n" not in text


def test_history_keys_never_collide(client):
    client.create_registered_model("crs-severe-0h")
    for _ in range(3):
        client.create_model_version("crs-severe-0h", source="file:///nowhere")
    keys = [set_alias_with_history(client, "crs-severe-0h", CHAMPION, v, "r")[0] for v in "123"]
    assert len(set(keys)) == 3 and keys == sorted(keys)
    assert [h["version"] for h in alias_history(client, "crs-severe-0h")] == ["1", "2", "3"]
