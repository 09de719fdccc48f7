"""Horizons say what the label counts (README "What it is for"; issue 11 §4). Refractory:
within the task's window after the first dose, a second-line drug for CRS, worsening to grade
≥3, or no improvement — each enabled clause, with the window the task declares."""

from __future__ import annotations

import dataclasses

from features.tasks import get_task
from serving.wording import horizon_text


def test_the_refractory_horizon_names_the_window_and_every_clause():
    task = get_task("toci_refractory")
    for landmark, when in (("decision", "at the anti-IL-6 decision"), ("first_toci", "first dose")):
        text = horizon_text(task, landmark)
        assert when in text and "within 72 h of the first dose" in text
        assert "a second-line drug for CRS" in text and "worsening to grade ≥3" in text
        assert "no improvement 24 h after up to 2 doses" in text
        assert "does not estimate siltuximab benefit" in text


def test_the_horizon_follows_the_declared_window_and_clauses():
    task = dataclasses.replace(
        get_task("toci_refractory"), window_hours=48.0, refractory_criteria=("second_line",)
    )
    text = horizon_text(task, "first_toci")
    assert "within 48 h of the first dose, a second-line drug for CRS (" in text
    assert "worsening" not in text and "no improvement" not in text


def test_the_severe_horizon_reads_as_a_sentence_at_every_landmark():
    """The 0 h landmark once read "… before infusion from CAR T infusion"."""
    task = get_task("severe_crs")
    assert horizon_text(task, "0h") == (
        "ASTCT grade ≥3 CRS (or death from CRS) from CAR T infusion until CRS resolves, "
        "scored before infusion"
    )
    assert horizon_text(task, "48h") == (
        "ASTCT grade ≥3 CRS (or death from CRS) from 48 h after CAR T infusion until CRS resolves"
    )
