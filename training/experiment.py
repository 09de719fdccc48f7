"""Declared experiments: what to train, on which cohort, how to validate — read from YAML.

An experiment file is validated completely before anything runs; every problem is reported as
one line naming the file and the key (``experiments/x.yaml: validation.folds: must be ≥ 2``),
raised as :class:`features.errors.CrsRiskError` (CLI exit code 2). Relative paths in the file
are resolved against the file's own folder, so an experiment runs the same from any directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from features.errors import CrsRiskError
from features.profile import FlagRules
from training.models import parameter_problem

TASKS: tuple[str, ...] = ("severe_crs", "toci_refractory")
SEVERE_LANDMARKS: tuple[str, ...] = ("0h", "24h", "48h", "72h")  # the default list
TOCI_LANDMARKS: tuple[str, ...] = ("decision", "first_toci")
DEFAULT_THRESHOLDS: tuple[float, ...] = (0.1, 0.2, 0.3)  # risk thresholds reported
MAX_LANDMARK_HOURS = 336  # features.tasks.MAX_LANDMARK_HOURS (day 14)
MODEL_NAMES: tuple[str, ...] = (
    "logreg",
    "xgboost",
    "m_easix",
    "cytokine3",
    "fever_mcp1",
    "high_burden",
    "cytokine_max",
)
LEARNED_MODELS: tuple[str, ...] = ("logreg", "xgboost")


def normalise_landmark(value: Any) -> str:
    """``48``, ``"48"``, ``"48h"`` → ``"48h"`` (whole hours 0–336); ``decision`` and
    ``first_toci`` (``first-toci``) unchanged."""
    text = str(value).strip().lower().replace("-", "_")
    if text in TOCI_LANDMARKS:
        return text
    if text.endswith("h"):
        text = text[:-1]
    try:
        hours = float(text)
    except ValueError:
        raise ValueError(
            f"landmark {value!r} is not a number of hours, 'decision' or 'first_toci'"
        ) from None
    if not (hours == hours and hours == int(hours) and 0 <= hours <= MAX_LANDMARK_HOURS):
        raise ValueError(
            f"landmark {value!r} must be a whole number of hours from 0 to {MAX_LANDMARK_HOURS}"
        )
    return f"{int(hours)}h"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SynthSpec(_Strict):
    n: int = Field(118, ge=20)
    seed: int = 7
    centers: int = Field(4, ge=1)
    new_center: bool = False
    center_shift: float = Field(1.0, ge=0)


class ImportSpec(_Strict):
    mapping: Path
    sources: list[Path] = Field(min_length=1)


class CohortSpec(_Strict):
    """Exactly one of ``path`` (cohort folder), ``synth`` or ``import`` (a real extract)."""

    path: Path | None = None
    synth: SynthSpec | None = None
    import_: ImportSpec | None = Field(None, alias="import")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _one_source(self) -> CohortSpec:
        given = [k for k in ("path", "synth", "import_") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of path, synth or import")
        return self


class TaskSpec(_Strict):
    landmarks: list[str] = Field(min_length=1)
    models: list[str] | None = None  # default: every model of the experiment

    @field_validator("landmarks", mode="before")
    @classmethod
    def _norm(cls, v: Any) -> list[str]:
        if not isinstance(v, list):
            raise ValueError("must be a list of landmarks")
        return [normalise_landmark(x) for x in v]


class ModelSpec(_Strict):
    """Fixed parameters, the inner-loop grid and calibration of one model."""

    params: dict[str, Any] = Field(default_factory=dict)
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    # None = the model's default (logreg: none; xgboost: validation.calibration)
    calibration: Literal["auto", "sigmoid", "isotonic", "none"] | None = None
    monotone: bool = True  # xgboost: constraints from the catalog's expected directions

    @field_validator("grid")
    @classmethod
    def _non_empty(cls, v: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for key, values in v.items():
            if not values:
                raise ValueError(f"grid entry {key!r} has no values")
        return v


class FeatureSetSpec(_Strict):
    """A subset of the catalog: keep only ``include_groups`` and/or drop ``exclude_groups``."""

    include_groups: list[str] | None = None
    exclude_groups: list[str] = Field(default_factory=list)
    exclude: list[str] = Field(default_factory=list)


REPEATS_SMALL_COHORT = 5  # default repeats below 500 patients (CIs and estimates settle)
SMALL_COHORT = 500
NULL_CHECK_AUTO_BELOW = 100  # patients: below this a null check runs unless declared
NULL_CHECK_AUTO_K = 10


class ValidationSpec(_Strict):
    method: Literal["repeated_cv", "leave_one_centre_out"] = "repeated_cv"
    folds: int = Field(5, ge=2, le=20)
    # None = 5 below 500 patients, else 2 (resolved per landmark from the eligible cohort)
    repeats: int | None = Field(None, ge=1, le=100)
    inner_folds: int = Field(3, ge=2, le=10)
    group_by_center: bool = False
    calibration: Literal["auto", "sigmoid", "isotonic", "none"] = "auto"
    tuning_scoring: Literal["neg_log_loss", "roc_auc", "neg_brier_score"] = "neg_log_loss"
    bootstrap_ci: int = Field(500, ge=0, le=20000)
    subgroup_bootstrap_ci: int = Field(200, ge=0, le=20000)
    ci_level: float = Field(0.95, gt=0.5, lt=1)
    # outcome permutations of the whole procedure; None = automatic below NULL_CHECK_AUTO_BELOW
    null_check: int | None = Field(None, ge=0, le=1000)

    @model_validator(mode="before")
    @classmethod
    def _retired(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("method") == "bootstrap_optimism":
            raise ValueError(
                "method: bootstrap_optimism is no longer offered (Harrell's optimism fails the "
                "null check when predictors outnumber events); use repeated_cv"
            )
        if isinstance(data, dict) and "optimism_bootstraps" in data:
            raise ValueError("optimism_bootstraps: bootstrap_optimism is no longer offered")
        return data

    def repeats_for(self, n_patients: int) -> int:
        """Declared repeats, else ≥ 5 below 500 patients and 2 above."""
        if self.repeats is not None:
            return self.repeats
        return REPEATS_SMALL_COHORT if n_patients < SMALL_COHORT else 2

    def null_check_for(self, n_patients: int, override: int | None = None) -> int:
        """Permutations to run: the CLI's, the file's, else automatic for small cohorts."""
        if override is not None:
            return override
        if self.null_check is not None:
            return self.null_check
        return NULL_CHECK_AUTO_K if n_patients < NULL_CHECK_AUTO_BELOW else 0


class DecisionCurveSpec(_Strict):
    start: float = Field(0.02, gt=0, lt=1)
    stop: float = Field(0.6, gt=0, lt=1)
    step: float = Field(0.02, gt=0, lt=0.5)

    @model_validator(mode="after")
    def _order(self) -> DecisionCurveSpec:
        if self.stop <= self.start:
            raise ValueError("stop must be greater than start")
        return self

    def grid(self) -> list[float]:
        n = round((self.stop - self.start) / self.step) + 1
        return [round(self.start + i * self.step, 6) for i in range(n)]


class ChampionSpec(_Strict):
    """The declared rule that sets the ``champion`` alias of each registered model."""

    metric: Literal["auroc", "auprc", "scaled_brier"] = "auroc"
    slope_band: tuple[float, float] = (0.7, 1.3)
    # only models with a fitted calibration step (logistic models are calibrated by their fit
    # and judged by the slope band on out-of-sample predictions, so the default is False)
    require_calibrated: bool = False
    models: list[str] | None = None  # candidates; default: every model trained
    fallback: Literal["none", "closest_slope"] = "none"
    # register only when the champion procedure shows usable signal out of sample (its AUROC
    # CI above 0.5 and, when a null check ran, its AUROC above the null's 95th percentile);
    # false registers anyway and says "no usable signal" in the version and its card
    require_signal: bool = True

    @field_validator("slope_band")
    @classmethod
    def _band(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not 0 < v[0] < v[1]:
            raise ValueError("must be [low, high] with 0 < low < high")
        return v

    def describe(self) -> str:
        lo, hi = self.slope_band
        calibrated = "calibrated " if self.require_calibrated else ""
        text = f"best {self.metric} among {calibrated}models with calibration slope in [{lo}, {hi}]"
        if self.fallback == "closest_slope":
            text += "; if none qualifies, the model with slope closest to 1"
        return text


class Experiment(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    seed: int = 7
    cohort: CohortSpec
    tasks: dict[str, TaskSpec] = Field(min_length=1)
    models: dict[str, ModelSpec] = Field(min_length=1)
    feature_sets: dict[str, FeatureSetSpec] = Field(
        default_factory=lambda: {"all": FeatureSetSpec()}
    )
    validation: ValidationSpec = Field(default_factory=lambda: ValidationSpec.model_validate({}))
    thresholds: list[float] = Field(default_factory=lambda: list(DEFAULT_THRESHOLDS))
    decision_curve: DecisionCurveSpec = Field(
        default_factory=lambda: DecisionCurveSpec.model_validate({})
    )
    subgroups: list[str] = Field(
        default_factory=lambda: ["age_band", "product", "center", "marrow_burden"]
    )
    champion: ChampionSpec = Field(default_factory=ChampionSpec)
    # a model declared in advance as the one reported: no selection among candidates
    primary: str | None = None
    register_models: bool = True  # register champions after training
    # thresholds of the data-quality flags (issue 17): the names of a `cohort profile --rules`
    # file (features.profile.FlagRules), so the profile and training flag the same things
    data_quality: dict[str, Any] = Field(default_factory=dict)
    source_file: Path | None = Field(None, exclude=True)

    @field_validator("tasks")
    @classmethod
    def _tasks(cls, v: dict[str, TaskSpec]) -> dict[str, TaskSpec]:
        for task, spec in v.items():
            if task not in TASKS:
                raise ValueError(f"unknown task {task!r} (known: {', '.join(TASKS)})")
            for lm in spec.landmarks:
                toci = lm in TOCI_LANDMARKS
                if toci != (task == "toci_refractory"):
                    allowed = (
                        "decision, first_toci"
                        if task == "toci_refractory"
                        else f"whole hours 0–{MAX_LANDMARK_HOURS}, e.g. 48h"
                    )
                    raise ValueError(f"{task}: landmark {lm!r} not supported (use {allowed})")
            if len(set(spec.landmarks)) != len(spec.landmarks):
                raise ValueError(f"{task}: a landmark is listed twice")
        return v

    @field_validator("models")
    @classmethod
    def _models(cls, v: dict[str, ModelSpec]) -> dict[str, ModelSpec]:
        for name in v:
            if name not in MODEL_NAMES:
                raise ValueError(f"unknown model {name!r} (known: {', '.join(MODEL_NAMES)})")
        return v

    @field_validator("thresholds")
    @classmethod
    def _thresholds(cls, v: list[float]) -> list[float]:
        if any(not 0 < t < 1 for t in v):
            raise ValueError("every threshold must lie strictly between 0 and 1")
        return sorted(v)

    @field_validator("subgroups")
    @classmethod
    def _subgroups(cls, v: list[str]) -> list[str]:
        known = ("age_band", "product", "center", "marrow_burden")
        for s in v:
            if s not in known:
                raise ValueError(f"unknown subgroup {s!r} (known: {', '.join(known)})")
        return v

    @field_validator("data_quality")
    @classmethod
    def _data_quality(cls, v: dict[str, Any]) -> dict[str, Any]:
        try:
            FlagRules.from_mapping(v)
        except CrsRiskError as exc:
            raise ValueError(str(exc)) from None
        return v

    def flag_rules(self) -> FlagRules:
        """The data-quality thresholds: the defaults with ``data_quality`` overrides."""
        return FlagRules.from_mapping(self.data_quality)

    @model_validator(mode="after")
    def _cross(self) -> Experiment:
        for task, spec in self.tasks.items():
            for m in spec.models or []:
                if m not in self.models:
                    raise ValueError(f"tasks.{task}.models: {m!r} is not declared under models")
        for m in self.champion.models or []:
            if m not in self.models:
                raise ValueError(f"champion.models: {m!r} is not declared under models")
        if self.primary is not None and self.primary not in self.models:
            raise ValueError(f"primary: {self.primary!r} is not declared under models")
        return self

    def models_for(self, task: str) -> list[str]:
        spec = self.tasks[task]
        return list(spec.models) if spec.models else list(self.models)

    def resolve(self, path: Path) -> Path:
        """A path from the file, relative to the file's folder."""
        if path.is_absolute() or self.source_file is None:
            return path
        return (self.source_file.parent / path).resolve()


def _format_error(file: Path, exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"] if x != "import_") or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        given = err.get("input")
        tail = ""
        if err["type"] not in ("missing",) and not isinstance(given, dict | list):
            tail = f" (got {given!r})"
        parts.append(f"{loc}: {msg}{tail}")
    return f"{file}: " + "; ".join(parts)


def load_experiment(path: Path | str) -> Experiment:
    """Read and validate an experiment file; every problem → one-line ``CrsRiskError``."""
    file = Path(path)
    if not file.is_file():
        raise CrsRiskError(f"{file}: experiment file not found")
    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise CrsRiskError(f"{file}: not valid YAML{where}: {problem}") from None
    if not isinstance(raw, dict):
        raise CrsRiskError(f"{file}: expected a mapping of keys (name, cohort, tasks, models, …)")
    try:
        exp = Experiment.model_validate({k: v for k, v in raw.items() if k != "source_file"})
    except ValidationError as exc:
        raise CrsRiskError(_format_error(file, exc)) from None

    for name, spec in exp.models.items():
        problem = parameter_problem(name, spec.params, spec.grid)
        if problem:
            raise CrsRiskError(f"{file}: {problem}")
    return exp.model_copy(update={"source_file": file.resolve()})
