"""Issue 14 against a real ``crs-risk serve`` over HTTPS with a token file (quickstart store).

Named tokens and roles, open page shell and docs, the OpenAPI security scheme; the audit log
(token names, 0600, key outside, a locked and an immutable file → 503 on /readyz and on
scoring while /healthz stays fast, ``audit verify``); abstention and eligibility after the
landmark on every route; batch/CSV warnings equal the single route's; unknown CSV columns; no
422 echoes a submitted value.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from serving.auth import add_token
from tests.serving.conftest import Service, start_service, stop_service
from tests.serving.stores import CRS_RISK
from tests.serving.test_bedside_units import _chattr

pytestmark = pytest.mark.slow
KEY = "5e" * 32


def _self_signed(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@pytest.fixture(scope="module")
def bedside(store_uri: str, tmp_path_factory) -> Iterator[tuple[Service, dict[str, str]]]:
    folder = tmp_path_factory.mktemp("bedside")
    tokens = folder / "tokens.txt"
    names = {"alice": add_token(tokens, "alice", "score"), "ops": add_token(tokens, "ops", "admin")}
    cert, key = _self_signed(folder)
    svc = start_service(
        store_uri,
        folder,
        args=("--token-file", str(tokens), "--tls-cert", str(cert), "--tls-key", str(key)),
        env_extra={"CRS_RISK_AUDIT_KEY": KEY},
        scheme="https",
    )
    yield svc, names
    stop_service(svc)


def _client(svc: Service, token: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=svc.url, headers=headers, timeout=60, verify=False)


def test_page_docs_open_api_closed_roles_and_security_scheme(bedside):
    svc, tokens = bedside
    with _client(svc, None) as c:
        for path in ("/", "/static/app.js", "/static/app.css", "/docs", "/openapi.json"):
            assert c.get(path).status_code == 200, path
        assert c.get("/v1/models").status_code == 401
        assert c.post("/v1/risk", json={}).status_code == 401
        doc = c.get("/openapi.json").json()
    assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert doc["paths"]["/v1/risk"]["post"]["security"] == [{"bearerAuth": []}]
    assert "security" not in doc["paths"]["/healthz"]["get"]
    with _client(svc, tokens["alice"]) as c:
        assert c.get("/v1/models").status_code == 200
        assert c.post("/v1/models/reload").status_code == 403  # score role
    with _client(svc, tokens["ops"]) as c:
        assert c.post("/v1/models/reload").status_code == 200  # admin role


def _grade4_then_death() -> dict:
    return {
        "patient_ref": "late-outcome",
        "patient": {"marrow_blasts_pct": 30.0, "age_years": 10.0},
        "measurements": [
            {"analyte": "il6", "hours_from_infusion": 40, "value": 300, "unit": "pg/mL"},
            {"analyte": "temperature", "hours_from_infusion": 40, "value": 39.0, "unit": "°C"},
        ],
        "events": [
            {"event": "crs_onset", "hours_from_infusion": 30, "grade": 1},
            {"event": "crs_grade", "hours_from_infusion": 60, "grade": 4},
            {"event": "death", "hours_from_infusion": 70},
        ],
    }


def test_abstention_and_eligibility_on_every_route(bedside):
    svc, tokens = bedside
    with _client(svc, tokens["alice"]) as c:
        empty = c.post("/v1/risk", json={}).json()
        severe = empty["results"][0]
        assert severe["status"] == "insufficient_data" and severe["probability"] is None
        assert severe["band"] is None and severe["missing_inputs"]
        late = c.post("/v1/risk", json=_grade4_then_death()).json()
        assert late["landmark"] == "48h"
        r = late["results"][0]
        assert r["status"] == "not_eligible" and r["probability"] is None
        assert "after the 48h landmark" in r["reason"]
        batch = c.post("/v1/risk/batch", json={"patients": [{}, _grade4_then_death()]}).json()
        assert [it["results"][0]["status"] for it in batch["items"]] == [
            "insufficient_data",
            "not_eligible",
        ]
        csv = "patient_ref,record,age_years\nA,patient,9.5\n"
        got = c.post("/v1/risk/batch", content=csv, headers={"Content-Type": "text/csv"}).json()
        assert got["items"][0]["results"][0]["status"] == "insufficient_data"


def test_batch_and_csv_carry_the_single_routes_warnings(bedside, examples):
    svc, tokens = bedside
    with _client(svc, tokens["alice"]) as c:
        for ex in examples:
            body = {**ex["request"], "explain": False}
            single = c.post("/v1/risk", json=body).json()
            batch = c.post("/v1/risk/batch", json={"patients": [body]}).json()
            for s, b in zip(single["results"], batch["items"][0]["results"], strict=True):
                assert s["warnings"] == b["warnings"] and s["status"] == b["status"]
                assert s["probability"] == b["probability"] and s["interval"] == b["interval"]
        body = examples[0]["request"]
        rows = ["patient_ref,record,hours_from_infusion,analyte,value,unit,age_years"]
        rows.append(f"A,patient,,,,,{body['patient']['age_years']}")
        rows += [
            f"A,measurement,{m['hours_from_infusion']},{m['analyte']},{m['value']},{m['unit']},"
            for m in body["measurements"]
        ]
        csv = "\n".join(rows) + "\n"
        as_json = {
            "patient_ref": "A",
            "patient": {"age_years": body["patient"]["age_years"]},
            "measurements": [
                {k: m[k] for k in ("hours_from_infusion", "analyte", "value", "unit")}
                for m in body["measurements"]
            ],
        }
        via_csv = c.post("/v1/risk/batch", content=csv, headers={"Content-Type": "text/csv"})
        single = c.post("/v1/risk", json={**as_json, "explain": False}).json()
        assert via_csv.status_code == 200, via_csv.text
        got = via_csv.json()["items"][0]["results"]
        assert [r["warnings"] for r in got] == [r["warnings"] for r in single["results"]]
        misspelt = csv.replace("age_years", "age_yeras", 1)
        r = c.post("/v1/risk/batch", content=misspelt, headers={"Content-Type": "text/csv"})
        assert r.status_code == 422
        assert r.json()["detail"][0]["loc"] == ["body", "header", "age_yeras"]


SENTINEL = "ZQX-4242-SENTINEL"


def test_422_messages_never_echo_values(bedside):
    svc, tokens = bedside
    bad = {
        "patient_ref": "x" * 200 + SENTINEL,
        "patient": {"sex": SENTINEL, "product": SENTINEL, "age_years": 4242.4242},
        "measurements": [
            {"analyte": "crp", "hours_from_infusion": 1, "value": 4242.4242, "unit": SENTINEL},
            {"analyte": SENTINEL, "hours_from_infusion": 1, "value": 1, "unit": "mg/L"},
        ],
        "events": [{"event": "crs_grade", "hours_from_infusion": 1, "grade": SENTINEL}],
    }
    csv = f"patient_ref,record,age_years,sex\nA,patient,{SENTINEL},{SENTINEL}\n"
    with _client(svc, tokens["alice"]) as c:
        for r in (
            c.post("/v1/risk", json=bad),
            c.post("/v1/risk/batch", json={"patients": [bad]}),
            c.post("/v1/risk/batch", content=csv, headers={"Content-Type": "text/csv"}),
            c.post("/v1/risk", json={**bad["measurements"][0], "x": 1}),
        ):
            assert r.status_code == 422
            assert SENTINEL not in r.text and "4242.4242" not in r.text, r.text
            assert all(d["loc"] and d["msg"] for d in r.json()["detail"])
        # a unit the contract rejects after parsing: the rule is named, not the unit
        ok_shape = {
            "measurements": [
                {"analyte": "crp", "hours_from_infusion": 1, "value": 3, "unit": SENTINEL[:30]}
            ]
        }
        r = c.post("/v1/risk", json=ok_shape)
        assert r.status_code == 422 and SENTINEL[:30] not in r.text


def test_audit_records_token_names_and_is_private(bedside, examples):
    svc, tokens = bedside
    with _client(svc, tokens["alice"]) as c:
        assert c.post("/v1/risk", json=examples[0]["request"]).status_code == 200
    with _client(svc, tokens["ops"]) as c:  # self-contained: xdist may run tests apart
        assert c.post("/v1/models/reload").status_code == 200
    assert stat.S_IMODE(svc.audit_db.stat().st_mode) == 0o600
    con = sqlite3.connect(f"file:{svc.audit_db}?mode=ro", uri=True)
    names = {n for (n,) in con.execute("SELECT token_name FROM scores")}
    reload_by = [
        json.loads(d)["token"]
        for (d,) in con.execute("SELECT detail FROM service_events WHERE event = 'reload'")
    ]
    con.close()
    assert "alice" in names and None not in names
    assert reload_by and set(reload_by) == {"ops"}
    for path in svc.audit_db.parent.glob(svc.audit_db.name + "*"):
        assert bytes.fromhex(KEY) not in path.read_bytes() and KEY.encode() not in path.read_bytes()


def _timed(fn) -> tuple[float, httpx.Response]:
    t = time.monotonic()
    r = fn()
    return time.monotonic() - t, r


def test_locked_then_immutable_audit_file_turns_readyz_and_scoring_503(bedside, examples):
    svc, tokens = bedside
    body = examples[0]["request"]
    with _client(svc, tokens["alice"]) as c:
        other = sqlite3.connect(svc.audit_db, isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")  # another process locks the file
        try:
            took, r = _timed(lambda: c.get("/healthz"))
            assert r.status_code == 200 and took < 1.0
            assert c.get("/readyz").status_code == 503
            took, r = _timed(lambda: c.post("/v1/risk", json=body))
            assert r.status_code == 503 and "audit" in r.json()["detail"] and took < 5
            assert c.post("/v1/risk/batch", json={"patients": [body]}).status_code == 503
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert c.get("/readyz").status_code == 200
        assert c.post("/v1/risk", json=body).status_code == 200
        if _chattr("+i", svc.audit_db):
            try:
                assert c.get("/readyz").status_code == 503
                assert c.post("/v1/risk", json=body).status_code == 503
            finally:
                _chattr("-i", svc.audit_db)
            assert c.get("/readyz").status_code == 200


def test_audit_verify_after_the_service(bedside):
    svc, _ = bedside
    env = {"CRS_RISK_AUDIT_KEY": KEY, "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [str(CRS_RISK), "audit", "verify", str(svc.audit_db)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert out.returncode == 0 and "intact" in out.stdout, out.stderr
