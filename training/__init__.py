"""Models, small-sample validation, metrics, explanations, MLflow tracking and registry.

Public names are resolved lazily (PEP 562), so ``import training`` has no side effect and
loads neither MLflow nor scikit-learn (``crs-risk --help`` stays fast). The two entry points
share their module's name: ``training.train.train`` (assess → sink → register) and
``training.evaluate.evaluate`` (external validation).

Steps, top to bottom (the import-linter contract in pyproject.toml keeps this order):
wiring (``train``, ``evaluate``, ``compare``) → model card (``card`` over ``card_gather``,
``card_context``, ``card_tripod``, ``card_render``) → tracking writers (``sink``,
``sink_runs``, ``promotion``) → look-ups and checks (``registry``, ``tracking``,
``cohort_source``, ``feature_sets``, ``paired``, ``data_quality``) → pure steps
(``assessment``, ``selection``, ``measure``, ``champion``, ``resampling``, ``experiment``,
``models`` …) → measures (``metrics``, ``calibration``, ``subgroups``).
"""

from __future__ import annotations

import importlib
from typing import Any

_PUBLIC: dict[str, str] = {
    "Experiment": "training.experiment",
    "load_experiment": "training.experiment",
    "assess_landmark": "training.assessment",
    "LandmarkAssessment": "training.assessment",
    "MeasureSpec": "training.measure",
    "measure_predictions": "training.measure",
    "Candidate": "training.champion",
    "choose_champion": "training.champion",
    "TrainHooks": "training.train",
    "TrainResult": "training.train",
    "EvaluationResult": "training.evaluate",
    "registered_name": "training.registry",
    "resolve_version": "training.registry",
    "register_and_promote": "training.promotion",
    "build_card": "training.card",
    "fetch_model_card": "training.card",
    "log_model_card": "training.card",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'training' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
