"""``crs-risk cohort profile`` through the real entry point: synthetic folders, car22, and the
report in headless Chromium offline."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pandas as pd
import pytest

from features.profile import quality_flags
from features.profile.render import SECTIONS
from tests.conftest import CHROMIUM, offline_page

REPO = Path(__file__).resolve().parents[2]
CAR22_MAPPING = REPO / "experiments" / "mappings" / "car22.yaml"


@pytest.fixture(scope="module")
def synth_report(tmp_path_factory):
    from features.synth import synth_to_folder
    from tests.conftest import run_cli

    root = tmp_path_factory.mktemp("profile")
    synth_to_folder(root / "cohort", n=200, seed=4)
    out = root / "reports" / "report.html"
    result = run_cli("cohort", "profile", root / "cohort", "--out", out)
    return result, out, root


def test_cli_writes_the_report_and_a_terminal_summary(synth_report):
    result, out, root = synth_report
    assert result.exit_code == 0, result.stderr
    assert "200 patients" in result.stdout and "report written" in result.stdout
    html = out.read_text(encoding="utf-8")
    for _, anchor in SECTIONS:
        assert f'id="{anchor}"' in html
    assert not re.search(r'(src|href)="(https?:)?//', html), "the report must load nothing"
    assert "<script" not in html
    ids = pd.read_csv(root / "cohort" / "patients.csv")["patient_id"].astype(str)
    assert not any(f">{i}<" in html or f" {i} " in html for i in ids)


def test_cli_refuses_bad_input_with_exit_2(tmp_path, synth_report):
    from tests.conftest import run_cli

    _, _, root = synth_report
    bad = run_cli("cohort", "profile", tmp_path / "nowhere", "--out", tmp_path / "r.html")
    assert bad.exit_code == 2 and "not found" in bad.stderr
    assert not (tmp_path / "r.html").exists()
    rules = tmp_path / "rules.yaml"
    rules.write_text("imputation_shares: 0.2\n", encoding="utf-8")
    res = run_cli(
        "cohort", "profile", root / "cohort", "--out", tmp_path / "r.html", "--rules", rules
    )
    assert res.exit_code == 2 and "imputation_shares" in res.stderr
    assert "Traceback" not in res.stderr and not (tmp_path / "r.html").exists()
    rules.write_text("imputation_share: 0.5\nunit_factors: [10, 1000]\n", encoding="utf-8")
    ok = run_cli(
        "cohort", "profile", root / "cohort", "--out", tmp_path / "r.html", "--rules", rules
    )
    assert ok.exit_code == 0, ok.stderr
    assert "imputation_share" in (tmp_path / "r.html").read_text(encoding="utf-8")


@pytest.mark.car22
def test_car22_il18_ceiling_is_flagged(tmp_path, car22_dir):
    from features.io import load_cohort
    from tests.conftest import run_cli

    folder = tmp_path / "car22"
    imported = run_cli("cohort", "import", "--mapping", CAR22_MAPPING, "--out", folder, car22_dir)
    assert imported.exit_code == 0, imported.stderr
    cohort = load_cohort(folder)
    m = cohort.measurements
    il18 = (m["analyte"] == "il18").to_numpy()
    # the extract itself writes IL-18 = 5001 as a plain number: flagged as an upper limit
    raw = m.assign(qualifier=m["qualifier"].where(~il18))
    flags = quality_flags(dataclasses.replace(cohort, measurements=raw))
    ceiling = [f for f in flags if (f.kind, f.subject) == ("assay_limit", "il18")]
    assert len(ceiling) == 1 and ceiling[0].numbers["value"] == 5001.0
    assert "analyte_values: {il18: {ceiling: 5001}}" in ceiling[0].fix
    # through the CLI, with the mapping as it stands: flagged unless the mapping declares it
    declared = bool((m.loc[il18 & (m["value"] == 5001.0), "qualifier"] == ">").all())
    res = run_cli("cohort", "profile", folder, "--out", tmp_path / "car22.html")
    assert res.exit_code == 0, res.stderr
    assert ("IL-18: 5001 pg/mL" in res.stdout) is not declared
    assert "toci_refractory@first_toci" in res.stdout  # untimed tocilizumab: nobody eligible


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs /usr/bin/chromium (apt-get install chromium)"
)
def test_report_opens_offline_in_headless_chromium(synth_report):

    _, out, _ = synth_report
    own = out.resolve().as_uri()
    with offline_page(out) as (page, requested, blocked):
        headings = page.locator("section > h2").all_inner_texts()
        visible = {a: page.locator(f"section#{a}").is_visible() for _, a in SECTIONS}
        charts = page.locator("svg").count()
        il6 = page.locator("#analyte-il6 h3").inner_text()
        crs_by_day = page.locator("#crs-by-day").is_visible()
        page.click("nav a[href='#tasks']")
        task_rows = page.locator("#tasks tbody tr").count()
    assert headings == [title for title, _ in SECTIONS]
    assert all(visible.values()), visible
    assert charts > 20 and "IL-6" in il6 and crs_by_day
    assert task_rows == 6  # severe_crs at 0/24/48/72 h, toci_refractory at decision + first_toci
    assert blocked == [] and requested == [own]
