"""Issue 14 building blocks without a registered model: minimum inputs, training distribution,
interval, wording, tokens, the audit log's key, mode, chain and writability (real SQLite)."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.build import FEATURE_COLUMNS
from features.errors import CrsRiskError
from features.minimum_inputs import RULES, missing_inputs
from serving.audit import AuditLog, AuditRecord, open_audit
from serving.audit_key import KEY_ENV
from serving.audit_verify import verify
from serving.auth import add_token, load_tokens, read_token_file
from serving.checks import model_checks, row_warnings
from serving.server import exposure_warning
from serving.state import Settings
from serving.wording import in_100, reason_text
from tests.serving.stores import CRS_RISK
from training.distribution import training_distribution
from training.interval import fit_interval

COLS = list(FEATURE_COLUMNS)


def _row(**values: float) -> np.ndarray:
    x = np.full(len(COLS), np.nan)
    for k, v in values.items():
        x[COLS.index(k)] = v
    return x


# --- 1. minimum inputs -------------------------------------------------------------------------
def test_every_rule_names_catalog_variables_and_a_rationale():
    from features.catalog import CATALOG

    variables = {s.variable for s in CATALOG.values()}
    for rule in RULES:
        assert rule.rationale and rule.text
        for option in rule.options:
            for req in option:
                assert set(req.any_of) <= variables, req


def test_an_empty_patient_is_never_enough():
    empty = _row()
    for task, hours in (("severe_crs", 0.0), ("severe_crs", 48.0), ("toci_refractory", None)):
        assert missing_inputs(task, hours, empty, COLS)[0], (task, hours)


def test_minimum_inputs_pre_infusion_and_after():
    burden = _row(marrow_blasts_pct=40.0)
    labs = _row(ldh_pre_ld=500.0, platelets_pre_ld=80.0)
    ldh_only = _row(ldh_pre_ld=500.0)
    assert missing_inputs("severe_crs", 0.0, np.vstack([burden, labs, ldh_only]), COLS) == [
        [],
        [],
        ["disease burden (marrow blasts)", "platelets"],
    ]
    later = _row(marrow_blasts_pct=40.0, il6_last=30.0)
    assert missing_inputs("severe_crs", 48.0, later, COLS) == [["the temperature course"]]
    later[COLS.index("temperature_max")] = 38.5
    assert missing_inputs("severe_crs", 48.0, later, COLS) == [[]]


# --- 4. training distribution ---------------------------------------------------------------
def test_distribution_flags_values_beyond_training_and_unseen_products():
    X = pd.DataFrame(
        {
            "il6_max": [5.0, 50.0, 120.0, np.nan],
            "product_tisagenlecleucel": [1.0, 1.0, 0.0, 1.0],
            "product_cd22car": [0.0, 0.0, 0.0, 0.0],
            "il6_n": [1.0, 2.0, 3.0, 0.0],
        }
    )
    dist = training_distribution(X, centers=["a", "b", "a", "a"], synthetic=True)
    assert dist["products"] == ["tisagenlecleucel"] and dist["n_centers"] == 2
    assert dist["columns"]["il6_max"]["quantiles"]["1"] == 120.0
    cols = tuple(X.columns)
    checks = model_checks(cols, dist, None)
    rows = np.array(
        [
            [1250.0, 0.0, 1.0, 9.0],  # IL-6 above the training maximum; a CD22 patient
            [60.0, 1.0, 0.0, 9.0],  # inside; a count beyond training is practice, not flagged
        ]
    )
    warned = row_warnings(checks, cols, rows, "48h")
    codes = [sorted(w["code"] for w in ws) for ws in warned]
    assert codes == [["outside_training_data", "unseen_product"], []]
    text = " ".join(w["message"] for w in warned[0])
    assert "120" in text and "CD22" in text and "tisagenlecleucel" in text
    # an older model without a stored distribution: catalog ranges, said so
    old = row_warnings(model_checks(cols, None, None), cols, rows, "48h")
    assert old[1][0]["code"] == "no_training_distribution"


def test_a_value_beyond_the_training_range_never_reads_the_same_as_the_bound():
    """The usual rounding made a value and the bound it exceeds read alike ("5 h earlier is
    above the highest value in the training data (5 h earlier)"): more decimals then."""
    X = pd.DataFrame(
        {
            "il6_hours_since_first": [1.0, 3.0, 4.9],
            "ferritin_max": [100.0, 1000.0, 1000.2],
            "crp_slope_24h": [0.0, 0.01, 0.02],
        }
    )
    cols = tuple(X.columns)
    checks = model_checks(cols, training_distribution(X, synthetic=True), None)
    rows = np.array([[5.04, 1000.4, 0.03], [7.0, 2500.0, 0.5]])
    warned = row_warnings(checks, cols, rows, "0h")
    said = {w["field"]: w["message"] for w in warned[0]}
    assert (
        "5.0 h earlier is above the highest value in the training data (4.9 h earlier)"
        in (said["il6_hours_since_first"])
    )
    assert "1,000.4 ng/mL is above" in said["ferritin_max"]
    assert "(1,000.2 ng/mL)" in said["ferritin_max"]
    assert "(rising about 1.05-fold per day)" in said["crp_slope_24h"]
    for message in said.values():  # the value and the bound always read differently
        value, bound = message.split(": ", 1)[1].split(" is above ")
        assert value not in bound
    # far from the bound: the usual rounding
    far = {w["field"]: w["message"] for w in warned[1]}
    assert (
        "7 h earlier is above the highest value in the training data (5 h earlier)"
        in (far["il6_hours_since_first"])
    )


# --- 5. interval ----------------------------------------------------------------------------
def test_interval_narrows_with_more_validation_patients_and_covers_the_observed_rate():
    rng = np.random.default_rng(3)
    widths = []
    for n in (100, 2000):
        p = rng.beta(1.5, 6, n)
        y = (rng.random(n) < p).astype(float)
        table = fit_interval(p, y, n_boot=100)
        assert table is not None
        lo, hi = table.at(0.2)
        assert lo <= 0.2 <= hi  # calibrated predictions: the rate at 20% is about 20%
        widths.append(hi - lo)
    assert widths[1] < widths[0] / 2
    assert fit_interval(np.array([0.1, 0.2]), np.array([0.0, 0.0])) is None


# --- 6. wording -----------------------------------------------------------------------------
def test_wording_is_in_risk_terms():
    assert in_100(0.063) == "about 6 in 100" and in_100(0.001) == "fewer than 1 in 100"
    assert reason_text("IL-6, maximum", "1,250 pg/mL", 8.2).endswith(
        "raises the risk by about 8 points"
    )
    assert "lowers the risk" in reason_text("Platelets", "200", -3.0)


# --- 7. tokens ------------------------------------------------------------------------------
def test_named_tokens_are_hashed_at_rest_and_roles_checked(tmp_path):
    f = tmp_path / "tokens.txt"
    alice = add_token(f, "alice", "score")
    root = add_token(f, "ops", "admin")
    text = f.read_text()
    assert alice not in text and root not in text and "alice score sha256:" in text
    assert stat.S_IMODE(f.stat().st_mode) == 0o600
    tokens = load_tokens(f, None)
    assert tokens.check(alice.encode()).name == "alice"
    assert tokens.check(root.encode()).role == "admin"
    assert tokens.check(b"guess") is None
    with pytest.raises(CrsRiskError, match="already has"):
        add_token(f, "alice", "score")
    (tmp_path / "bad.txt").write_text("bob superuser sha256:" + "0" * 64 + "\n")
    with pytest.raises(CrsRiskError, match="line 1: role"):
        read_token_file(tmp_path / "bad.txt")


def test_start_up_warns_when_serving_beyond_loopback_without_a_token(tmp_path):
    bare = Settings("sqlite:///x.db", tmp_path / "a.db")
    assert exposure_warning("127.0.0.1", bare) is None
    assert "without a token" in exposure_warning("0.0.0.0", bare)
    with_token = Settings("sqlite:///x.db", tmp_path / "a.db", token_file=tmp_path / "t")
    assert exposure_warning("0.0.0.0", with_token) is None


# --- 8. audit -------------------------------------------------------------------------------
def _record(i: int, token: str | None = "alice") -> AuditRecord:
    return AuditRecord(f"req{i}", f"MRN-{i:04d}", {"crs-severe-48h": "1"}, "d" * 64, [], token)


def test_audit_key_lives_outside_the_file_and_both_are_private(tmp_path, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    db = tmp_path / "audit.sqlite"
    log = open_audit(db)
    log.append([_record(1)])
    log.close()
    key_file = tmp_path / "audit.sqlite.key"
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    lock_file = tmp_path / "audit.sqlite.lock"  # the replicas' turns: holds nothing, private too
    assert lock_file.stat().st_size == 0 and stat.S_IMODE(lock_file.stat().st_mode) == 0o600
    key = key_file.read_text().strip()
    for path in tmp_path.glob("audit.sqlite*"):
        if path != key_file:
            raw = path.read_bytes()
            assert key.encode() not in raw and bytes.fromhex(key) not in raw
            assert b"MRN-0001" not in raw
    con = sqlite3.connect(db)
    assert con.execute("SELECT token_name FROM scores").fetchall() == [("alice",)]
    con.close()
    key_file.chmod(0o644)
    with pytest.raises(CrsRiskError, match="mode 0644"):
        open_audit(db)
    key_file.chmod(0o600)
    monkeypatch.setenv(KEY_ENV, "ab" * 32)  # another key: the log refuses it
    with pytest.raises(CrsRiskError, match="another key"):
        open_audit(db)


def test_audit_verify_detects_a_deleted_and_an_edited_row(tmp_path, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    db = tmp_path / "audit.sqlite"
    log = open_audit(db)
    for i in range(6):
        log.append([_record(i)])
    log.close()
    ok = subprocess.run([str(CRS_RISK), "audit", "verify", str(db)], capture_output=True, text=True)
    assert ok.returncode == 0 and "intact" in ok.stdout, ok.stderr
    con = sqlite3.connect(db)
    con.execute("DROP TRIGGER scores_no_delete")
    con.execute("DELETE FROM scores WHERE id = 3")
    con.commit()
    con.close()
    bad = subprocess.run(
        [str(CRS_RISK), "audit", "verify", str(db)], capture_output=True, text=True
    )
    assert bad.returncode == 1 and "records 3–3 are missing" in bad.stderr
    result = verify(db)
    assert not result.ok
    con = sqlite3.connect(db)
    con.execute("DROP TRIGGER scores_no_update")
    con.execute("UPDATE scores SET outputs = '[]', prev_hash = prev_hash WHERE id = 5")
    con.execute("UPDATE scores SET token_name = 'mallory' WHERE id = 6")
    con.commit()
    con.close()
    problems = " ".join(verify(db).problems)
    assert "record 6 was changed" in problems


def test_a_locked_audit_file_fails_fast_and_recovers(tmp_path, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    db = tmp_path / "audit.sqlite"
    log = open_audit(db)
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
    try:
        t = time.monotonic()
        assert not log.writable()
        with pytest.raises(sqlite3.OperationalError):
            log.append([_record(1)])
        assert time.monotonic() - t < 2.0  # bounded by the busy timeout, not stuck
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert log.writable()
    log.append([_record(2)])
    log.close()
    assert verify(db).ok


def test_replicas_sharing_one_audit_file_keep_one_chain(tmp_path, monkeypatch):
    """``serve --workers N``: N processes append to one file; each must chain onto the head
    as written, not onto the last record it wrote itself (two logs = two connections)."""
    monkeypatch.delenv(KEY_ENV, raising=False)
    db = tmp_path / "audit.sqlite"
    a = open_audit(db)
    b = open_audit(db)
    a.append([_record(1)])
    b.append([_record(2)])
    a.append([_record(3), _record(4)])
    b.append_encoded("req5", ["MRN-5", None], ['{"m":"1"}'] * 2, ["d" * 64] * 2, ["[]"] * 2)
    a.append([_record(6)])
    # both take turns under load: the write waits for the other's lock instead of failing
    errors: list[BaseException] = []

    def burst(log: AuditLog, start: int) -> None:
        try:
            for k in range(20):
                log.append([_record(start + 100 * k + j) for j in range(200)])
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=burst, args=(log, s)) for log, s in ((a, 10), (b, 50))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    a.close()
    b.close()
    report = verify(db)
    assert report.ok, report.problems


def _chattr(flag: str, *paths: Path) -> bool:
    try:
        subprocess.run(["chattr", flag, *map(str, paths)], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        return False
    return True


def test_an_unwritable_audit_file_refuses_records(tmp_path, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    db = tmp_path / "audit.sqlite"
    log = open_audit(db)
    log.append([_record(1)])
    if os.geteuid() == 0:  # root ignores modes: make the file immutable instead
        if not _chattr("+i", db):
            pytest.skip("chattr is not available")
    else:
        db.chmod(0o400)
    try:
        assert not log.writable()
        with pytest.raises(OSError, match="not writable"):
            log.append([_record(2)])
    finally:
        if os.geteuid() == 0:
            _chattr("-i", db)
        else:
            db.chmod(0o600)
    assert log.writable()
    with contextlib.suppress(Exception):
        log.close()
