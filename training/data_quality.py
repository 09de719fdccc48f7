"""Data-quality flags of the training cohort at ``train`` time (issue 17 §3), as aggregates.

The flags are ``features.profile.quality_flags`` of the training cohort at the experiment's
landmarks — the same ones ``crs-risk cohort profile`` shows. What leaves the cohort is
``features.profile.flag_aggregates``: counts per kind, the flagged analytes / task landmarks,
each flag's evidence and fix (aggregate text) and the thresholds — never a row or a patient id.

Pure: ``training.train`` computes :func:`data_quality` for each task and the sink logs it on the
task's parent run (``training.sink.log_data_quality``); the card reads it back
(``training.card_gather.data_quality_section``).
"""

from __future__ import annotations

import re
from typing import Any

from features.cohort import Cohort
from features.profile import KINDS, FlagRules, flag_aggregates, quality_flags

ARTIFACT = "data_quality.json"


def data_quality(
    cohort: Cohort, landmarks: dict[str, tuple[str, ...]], rules: FlagRules | None = None
) -> dict[str, Any]:
    """Aggregated flags of ``cohort`` at ``landmarks`` (task → landmark names). Pure."""
    rules = rules or FlagRules()
    return flag_aggregates(quality_flags(cohort, rules, landmarks), rules)


def metrics_of(payload: dict[str, Any]) -> dict[str, float]:
    """MLflow metrics: the number of flags, in all and per kind."""
    out = {"data_quality_flags": float(payload["n_flags"])}
    out.update({f"data_quality_{k}": float(payload["counts"].get(k, 0)) for k in KINDS})
    return out


def tags_of(payload: dict[str, Any]) -> dict[str, str]:
    """MLflow tags, one per flagged subject: ``data_quality.<kind>.<subject>`` = ``"true"``.

    One tag per item so runs filter in the UI and ``search_runs``
    (``tags."data_quality.few_events.severe_crs.48h" = "true"``), not comma lists (issue 12 §5).
    MLflow tag keys allow no ``@``, so ``task@landmark`` becomes ``task.landmark``; the counts per
    kind are the ``data_quality_<kind>`` metrics and the full list is ``data_quality.json``.
    """
    return {
        f"data_quality.{k}.{_key_part(subject)}": "true"
        for k, subjects in payload["subjects"].items()
        for subject in subjects
    }


def _key_part(subject: str) -> str:
    """``subject`` as a valid MLflow tag-key part: ``@`` → ``.``, anything else unsafe → ``_``."""
    return re.sub(r"[^\w\-@]", "_", subject).replace("@", ".")
