"""Schemathesis against the real running service: zero server errors, responses as documented."""

from __future__ import annotations

import subprocess

import pytest

from tests.serving.conftest import Service
from tests.serving.stores import REPO

pytestmark = pytest.mark.slow


def test_schemathesis_finds_no_server_error(service: Service, tmp_path):
    result = subprocess.run(
        [
            str(REPO / ".venv" / "bin" / "schemathesis"),
            "run",
            f"{service.url}/openapi.json",
            "--header",
            f"Authorization: Bearer {service.token}",
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,"
            "response_schema_conformance",
            # reload re-reads every model from the store (seconds); tested in test_service_live
            "--exclude-path",
            "/v1/models/reload",
            "--max-examples",
            "25",
            "--seed",
            "20261127",
            "--no-color",
            "--report-dir",
            str(tmp_path / "report"),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tmp_path,
    )
    tail = result.stdout[-6000:]
    assert result.returncode == 0, tail
    assert "Server error" not in result.stdout
