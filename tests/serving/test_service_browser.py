"""The clinician page in real headless Chromium (Debian's), driven by Python Playwright.

The service runs with a token and the browser is given none (no header injection): the page
shell loads, asks for the token once and sends it with its API calls. Fill the form, submit,
see the risk with its plausible range and the reasons in risk points; a patient with no data
reads "insufficient data"; bad input gets a clear message; the page makes no request outside
the service (works offline); a screenshot is saved.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests.serving.conftest import Service

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium not installed (/usr/bin)"),
]
LAUNCH_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture
def page(service: Service):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        context = browser.new_context(viewport={"width": 1366, "height": 900})  # no headers
        outside: list[str] = []
        own = urlparse(service.url).netloc

        def guard(route):
            if urlparse(route.request.url).netloc != own:
                outside.append(route.request.url)
                route.abort()
            else:
                route.continue_()

        context.route("**/*", guard)
        pg = context.new_page()
        pg.outside = outside  # type: ignore[attr-defined]
        yield pg
        context.close()
        browser.close()


def give_token(page, service: Service) -> None:
    """The page asks for the token (its first API call got 401); type it once."""
    page.wait_for_selector("#token-panel:not([hidden])", timeout=60_000)
    page.fill("#token-input", service.token)
    page.click("#token-save")
    page.wait_for_selector("#token-panel", state="hidden", timeout=60_000)


def test_page_asks_for_the_token_and_scores_in_clinical_language(page, service: Service, tmp_path):
    shell = page.goto(service.url + "/")
    assert shell is not None and shell.status == 200  # the shell loads without a token
    assert "research use only" in page.inner_text("#notice").lower()
    give_token(page, service)
    page.wait_for_function("document.querySelectorAll('#models table tr').length >= 2")
    title = page.inner_text("#page-title")
    assert "CD19" not in title and "tisagenlecleucel" in title  # from the models' products
    assert "SYNTHETIC" in page.inner_text("#synthetic-banner")  # quickstart: simulated cohort
    page.fill("#f-age_years", "11")
    page.select_option("#f-product", "tisagenlecleucel")
    page.fill("#f-marrow_blasts_pct", "65")
    page.select_option("#f-lymphodepletion", "flu_cy")
    page.fill(
        "#f-measurements",
        "\n".join(
            [
                "-120, ldh, 700, U/L",
                "-120, crp, 1.1, mg/dL",
                "-120, platelets, 45, 10^9/L",
                "-120, creatinine, 0.5, mg/dL",
                "-120, ferritin, 900, ng/mL",
                "20, il6, 150, pg/mL",
                "20, temperature, 38.4, °C",
                "44, il6, 1250, pg/mL",
                "44, crp, 130, mg/L",
                "44, temperature, 39.1, °C",
            ]
        ),
    )
    page.fill("#f-events", "20, crs_onset, 1\n40, crs_grade, 2")
    page.fill("#f-as_of_hours", "48")
    page.click("#submit")
    risk = page.wait_for_selector("[data-testid=risk-severe_crs]", timeout=60_000)
    assert risk.inner_text().endswith("%")
    assert "plausible range" in page.inner_text("[data-testid=interval-severe_crs]")
    assert " in 100 patients like this" in page.inner_text("[data-testid=summary-severe_crs]")
    assert "from 48 h after CAR T infusion" in page.inner_text("#results")  # the horizon
    reasons = page.inner_text("[data-testid=reasons-severe_crs]")
    assert "raises the risk" in reasons or "lowers the risk" in reasons
    assert "log-odds" not in reasons  # log-odds only in the details view
    assert page.locator(".details").count() >= 1
    assert page.locator("#trend svg circle").count() >= 1
    text = page.inner_text("#results")
    assert "Model crs-severe-48h v" in text and "Validation:" in text
    shot = Path(os.environ.get("CRS_RISK_SCREENSHOT_DIR", tmp_path)) / "clinician-page.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    assert page.outside == []  # type: ignore[attr-defined]


def test_page_with_no_data_reads_insufficient_data(page, service: Service):
    page.goto(service.url + "/")
    give_token(page, service)
    page.click("#submit")  # nothing filled in
    box = page.wait_for_selector("[data-testid=insufficient-severe_crs]", timeout=60_000)
    assert "Insufficient data" in box.inner_text() and "Missing:" in box.inner_text()
    assert page.locator("[data-testid=risk-severe_crs]").count() == 0
    assert "%" not in box.inner_text()
    assert page.outside == []  # type: ignore[attr-defined]


def test_page_loads_an_example_and_reports_bad_input(page, service: Service):
    page.goto(service.url + "/")
    give_token(page, service)
    page.wait_for_function("document.querySelectorAll('#example-select option').length > 1")
    page.select_option("#example-select", index=2)
    page.focus("#load-example")
    page.keyboard.press("Enter")  # keyboard only
    assert page.input_value("#f-measurements").strip()
    page.fill("#f-age_years", "400")
    page.fill("#f-measurements", page.input_value("#f-measurements") + "\n30, il6, 12, furlongs")
    page.focus("#f-weight_kg")
    page.keyboard.press("Enter")  # submits the form
    page.wait_for_selector("#errors:not([hidden])", timeout=60_000)
    errors = page.inner_text("#errors")
    assert "Please correct the input" in errors
    assert "age_years" in errors and "100" in errors
    assert page.locator("[data-testid=risk-severe_crs]").count() == 0
    page.fill("#f-age_years", "12")
    page.click("#submit")
    page.wait_for_selector("#errors:not([hidden])", timeout=60_000)
    assert "furlongs" in page.inner_text("#errors") or "unit" in page.inner_text("#errors")
    assert page.outside == []  # type: ignore[attr-defined]


def test_api_documentation_renders_offline_without_a_token(page, service: Service):
    page.goto(service.url + "/docs")
    page.wait_for_selector(".opblock-summary-path", timeout=60_000)
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert any("/v1/risk" in p for p in paths)
    assert page.outside == []  # type: ignore[attr-defined]
