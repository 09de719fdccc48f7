"""Raw clinical data → model-ready tables: contract, I/O, units, simulator, tasks, features.

The package's public names are listed here and resolved on first use (PEP 562): importing
``features`` imports nothing else, so ``crs-risk --help`` stays fast. Each name lives in the
module of its one step (``features.io``, ``features.validation``, ``features.tasks``,
``features.build`` …); importing it from there works the same.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the same names, for type checkers (nothing is imported at run time)
    from features.build import build_features, build_landmarks, build_patient_features
    from features.catalog import CATALOG, FeatureSpec, catalog_for, feature_names
    from features.cohort import Cohort
    from features.errors import CohortError, CrsRiskError
    from features.importer import import_cohort
    from features.io import load_cohort, read_tables, validate_folder, write_cohort
    from features.profile import profile_cohort, quality_flags
    from features.records import Records, prepared
    from features.sample_size import SampleSize, riley_sample_size
    from features.synth import simulate, synth_to_folder
    from features.table import FeatureTable
    from features.tasks import TASKS, Assignment, Task, assign, get_task
    from features.transformers import make_preprocessor
    from features.validation import Outputs, Problem, ValidationReport, validate_tables

_HOME: dict[str, str] = {
    "build_features": "features.build",
    "build_landmarks": "features.build",
    "build_patient_features": "features.build",
    "CATALOG": "features.catalog",
    "FeatureSpec": "features.catalog",
    "catalog_for": "features.catalog",
    "feature_names": "features.catalog",
    "Cohort": "features.cohort",
    "CohortError": "features.errors",
    "CrsRiskError": "features.errors",
    "import_cohort": "features.importer",
    "load_cohort": "features.io",
    "read_tables": "features.io",
    "validate_folder": "features.io",
    "write_cohort": "features.io",
    "profile_cohort": "features.profile",
    "quality_flags": "features.profile",
    "Records": "features.records",
    "prepared": "features.records",
    "SampleSize": "features.sample_size",
    "riley_sample_size": "features.sample_size",
    "simulate": "features.synth",
    "synth_to_folder": "features.synth",
    "FeatureTable": "features.table",
    "TASKS": "features.tasks",
    "Assignment": "features.tasks",
    "Task": "features.tasks",
    "assign": "features.tasks",
    "get_task": "features.tasks",
    "make_preprocessor": "features.transformers",
    "Outputs": "features.validation",
    "Problem": "features.validation",
    "ValidationReport": "features.validation",
    "validate_tables": "features.validation",
}

__all__ = [
    "CATALOG",
    "TASKS",
    "Assignment",
    "Cohort",
    "CohortError",
    "CrsRiskError",
    "FeatureSpec",
    "FeatureTable",
    "Outputs",
    "Problem",
    "Records",
    "SampleSize",
    "Task",
    "ValidationReport",
    "assign",
    "build_features",
    "build_landmarks",
    "build_patient_features",
    "catalog_for",
    "feature_names",
    "get_task",
    "import_cohort",
    "load_cohort",
    "make_preprocessor",
    "prepared",
    "profile_cohort",
    "quality_flags",
    "read_tables",
    "riley_sample_size",
    "simulate",
    "synth_to_folder",
    "validate_folder",
    "validate_tables",
    "write_cohort",
]


def __getattr__(name: str) -> Any:
    """A public name, imported from its module on first use."""
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'features' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
