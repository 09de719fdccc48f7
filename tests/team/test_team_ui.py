"""Issue 16, "the MLflow UI showing the runs side by side", in a real browser: Debian's headless
Chromium (driven by Playwright, no browser download) signs in to the team stack's MLflow UI with
the team user's basic-auth credentials, opens the ``crs-severe`` experiment on its training runs
and the runs-compare view of two runs the suite trained, and reads both run names and a shared
metric row off the page.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest

from tests.conftest import CHROMIUM

from .conftest import Team

pytestmark = [
    pytest.mark.team,
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium not installed (/usr/bin)"),
]
LAUNCH_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking"]
TIMEOUT_MS = 30_000
# The texts of the value cells level with metric NAME's row in the compare view's metrics grid,
# left to right (one per run, in the order of the URL's runs).
ROW_VALUES_JS = """name => {
  const a = [...document.querySelectorAll('a[title="Plot chart"]')]
    .find(e => e.textContent.trim() === name);
  if (!a) return null;
  const r = a.getBoundingClientRect(), mid = (r.top + r.bottom) / 2;
  return [...document.querySelectorAll('[role=grid] span')]
    .filter(s => { const b = s.getBoundingClientRect();
                   return b.top < mid && b.bottom > mid && b.left >= r.right; })
    .sort((x, y) => x.getBoundingClientRect().left - y.getBoundingClientRect().left)
    .map(s => s.textContent.trim());
}"""


@pytest.fixture
def browser_page(team: Team) -> Iterator[Any]:
    """A page in a context that answers the server's basic-auth challenge as the team user;
    requests to any other host are aborted (the UI must work from the loopback server alone)."""
    from playwright.sync_api import sync_playwright

    own = urlparse(team.uri).netloc
    creds = {
        "username": team.env["MLFLOW_TRACKING_USERNAME"],
        "password": team.env["MLFLOW_TRACKING_PASSWORD"],
    }
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        context = browser.new_context(
            http_credentials=creds, viewport={"width": 1600, "height": 1000}
        )
        context.set_default_timeout(TIMEOUT_MS)
        context.route(
            "**/*",
            lambda route: (
                route.continue_() if urlparse(route.request.url).netloc == own else route.abort()
            ),
        )
        try:
            yield context.new_page()
        finally:
            context.close()
            browser.close()


def _two_runs(team: Team) -> tuple[str, list[dict[str, Any]]]:
    """The ``crs-severe`` experiment id and two candidate runs of the suite's latest training
    with distinct names at one landmark (so they share their metrics), as ``run_id``,
    ``run_name`` and ``auroc``. Read over the REST API (no ``import mlflow``: seconds on a busy
    machine)."""
    auth = (team.env["MLFLOW_TRACKING_USERNAME"], team.env["MLFLOW_TRACKING_PASSWORD"])
    with httpx.Client(base_url=team.uri + "/api/2.0/mlflow", auth=auth, timeout=30) as api:
        exp = api.get("/experiments/get-by-name", params={"experiment_name": "crs-severe"})
        exp_id = exp.raise_for_status().json()["experiment"]["experiment_id"]
        found = api.post(
            "/runs/search",
            json={
                "experiment_ids": [exp_id],
                "filter": "run_name LIKE 'candidate:%' AND status = 'FINISHED'",
                "order_by": ["attributes.start_time DESC"],
                "max_results": 50,
            },
        )
    runs = [
        {
            "run_id": r["info"]["run_id"],
            "run_name": r["info"]["run_name"],
            "auroc": {m["key"]: m["value"] for m in r["data"].get("metrics", [])}["auroc"],
        }
        for r in found.raise_for_status().json()["runs"]
    ]
    first = runs[0]
    landmark = first["run_name"].rsplit("@", 1)[1]
    second = next(
        r
        for r in runs[1:]
        if r["run_name"] != first["run_name"] and r["run_name"].endswith("@" + landmark)
    )
    return exp_id, [first, second]


def test_mlflow_ui_shows_two_runs_side_by_side(team: Team, quickstart: Path, browser_page: Any):
    from playwright.sync_api import expect

    page = browser_page
    exp_id, runs = _two_runs(team)
    # The experiment opens on its training runs. MLflow 3.17's UI ignores the experiment's
    # mlflow.experimentKind tag (custom_model_development, set by the tracking sink) when choosing
    # the view: a fresh browser on #/experiments/ID lands on the GenAI overview. The UI's own
    # switch, ?workflowType=machine_learning, opens it on the runs table.
    page.goto(f"{team.uri}/#/experiments/{exp_id}?workflowType=machine_learning")
    expect(page).to_have_url(re.compile(rf"#/experiments/{exp_id}/runs\b"), timeout=TIMEOUT_MS)
    expect(page.get_by_role("heading", name="Runs", exact=True)).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.get_by_text("experiment:quickstart").first).to_be_visible(timeout=TIMEOUT_MS)

    ids = json.dumps([r["run_id"] for r in runs], separators=(",", ":"))
    page.goto(f"{team.uri}/#/compare-runs?runs={ids}&experiments={json.dumps([exp_id])}")
    expect(page.get_by_text("Comparing 2 Runs from 1 Experiment")).to_be_visible(timeout=TIMEOUT_MS)
    table = page.locator("table.mlflow-compare-run-table")
    names = table.locator("tr", has=page.locator("th", has_text="Run Name:")).locator("td")
    expect(names).to_have_text([r["run_name"] for r in runs], timeout=TIMEOUT_MS)
    auroc = page.locator('a[title="Plot chart"]', has_text=re.compile(r"^auroc$"))
    expect(auroc).to_be_visible(timeout=TIMEOUT_MS)
    shown = page.evaluate(ROW_VALUES_JS, "auroc")
    assert shown is not None and len(shown) == 2, shown
    for text, run in zip(shown, runs, strict=True):  # the UI rounds to 3 decimals
        assert abs(float(text) - run["auroc"]) <= 6e-4, (shown, run["run_name"])
