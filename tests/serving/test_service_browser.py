"""The clinician page in real headless Chromium (Debian's), driven by Python Playwright.

Fill the form, submit, see the risk and the reasons; submit bad input, see a clear message;
the page makes no request outside the service (works offline); a screenshot is saved.
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
        context = browser.new_context(
            extra_http_headers=service.auth, viewport={"width": 1366, "height": 900}
        )
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


def test_page_scores_a_typed_patient_and_explains(page, service: Service, tmp_path):
    page.goto(service.url + "/")
    assert "research use only" in page.inner_text("#notice").lower()
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
    assert page.locator(".reasons li").count() >= 1
    assert "log-odds" in page.inner_text(".reasons")
    assert page.locator("#trend svg circle").count() >= 1
    text = page.inner_text("#results")
    assert "Model crs-severe-48h v" in text and "Uncertainty" in text
    assert page.locator("#models table tr").count() >= 2
    shot = Path(os.environ.get("CRS_RISK_SCREENSHOT_DIR", tmp_path)) / "clinician-page.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    assert page.outside == []  # type: ignore[attr-defined]


def test_page_loads_an_example_and_reports_bad_input(page, service: Service):
    page.goto(service.url + "/")
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


def test_api_documentation_renders_offline(page, service: Service):
    page.goto(service.url + "/docs")
    page.wait_for_selector(".opblock-summary-path", timeout=60_000)
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert any("/v1/risk" in p for p in paths)
    assert page.outside == []  # type: ignore[attr-defined]
