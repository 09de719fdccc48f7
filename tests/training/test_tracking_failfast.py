"""A dead tracking server fails a command fast, with one line (issue 12 §4): the client-based
probe, and the watch that interrupts a long computation between MLflow calls. Credentials
(basic-auth 401) are exercised against the real team stack in tests/team/.
"""

from __future__ import annotations

import signal
import time

import pytest

from features.errors import CrsRiskError
from training.tracking import WATCH_SIGNAL, check_reachable, watch_store

DEAD = "http://127.0.0.1:9"  # the discard port: nothing listens


def test_a_dead_server_is_one_line_within_seconds():
    import mlflow.tracking  # noqa: F401  (import time is not what is measured)

    t0 = time.monotonic()
    with pytest.raises(CrsRiskError) as info:
        check_reachable(DEAD)
    assert time.monotonic() - t0 < 10
    assert str(info.value) == f"tracking server unreachable at {DEAD}: connection refused"


def test_the_watch_stops_a_long_computation_when_the_server_goes():
    t0 = time.monotonic()
    with (
        pytest.raises(CrsRiskError, match="stopped mid-run; nothing promoted"),
        watch_store(DEAD, every=0.2),
    ):
        while time.monotonic() - t0 < 30:  # CPU-bound work with no MLflow call
            sum(range(10_000))
    assert time.monotonic() - t0 < 10


def test_the_watch_stops_the_computation_with_sigint_ignored():
    """A command started in the background of a script inherits an ignored SIGINT (as did the
    test run that found this): the watch must interrupt it all the same."""
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        t0 = time.monotonic()
        with (
            pytest.raises(CrsRiskError, match="stopped mid-run; nothing promoted"),
            watch_store(DEAD, every=0.2),
        ):
            while time.monotonic() - t0 < 30:
                sum(range(10_000))
        assert time.monotonic() - t0 < 10
    finally:
        signal.signal(signal.SIGINT, old)
    assert signal.getsignal(WATCH_SIGNAL) in (signal.SIG_DFL, None)  # handler removed again


def test_the_watch_is_silent_for_a_local_store(tmp_path):
    with watch_store(f"sqlite:///{tmp_path / 'mlflow.db'}", every=0.05) as watch:
        time.sleep(0.3)
    assert watch.error is None


def test_the_probe_never_writes_the_environment(monkeypatch):
    """The watch thread probes while the main thread logs models, and MLflow iterates the set
    of environment variables read during ``log_model``: a probe that set and restored
    variables crashed a team-stack demo ("Set changed size during iteration")."""
    import os

    writes: list[str] = []
    set_item, del_item = os._Environ.__setitem__, os._Environ.__delitem__

    def spy_set(self, key, value):  # type: ignore[no-untyped-def]
        writes.append(key)
        set_item(self, key, value)

    def spy_del(self, key):  # type: ignore[no-untyped-def]
        writes.append(key)
        del_item(self, key)

    monkeypatch.setattr(os._Environ, "__setitem__", spy_set)
    monkeypatch.setattr(os._Environ, "__delitem__", spy_del)
    with pytest.raises(CrsRiskError, match="connection refused"):
        check_reachable(DEAD)
    assert writes == []


def test_commands_on_a_server_switch_off_mlflows_environment_record(monkeypatch):
    import os

    from training.tracking import FAIL_FAST_ENV, use_fail_fast_http

    for k in FAIL_FAST_ENV:  # unset now, and as before once the test ends
        monkeypatch.setenv(k, "")
        monkeypatch.delenv(k)
    use_fail_fast_http()
    assert os.environ["MLFLOW_RECORD_ENV_VARS_IN_MODEL_LOGGING"] == "false"
