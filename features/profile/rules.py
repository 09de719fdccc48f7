"""Data-quality flags: what a flag is, and the thresholds that raise one (stated and configurable).

Every flag carries its evidence (aggregates only: counts, shares, values of the analyte, never a
patient id) and a suggested fix in the import mapping or the contract. The mapping keys the
fixes name are ``analyte_values: {<analyte>: {missing: [<constant>]}}`` (an imputation constant
means missing) and ``analyte_values: {<analyte>: {ceiling: <v>}}`` / ``{floor: <v>}`` (a
ceiling/floor written as a plain number becomes a '>' / '<' qualifier) on a measurement source
(``features.mapping.AnalyteValues``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from features.errors import CrsRiskError

KINDS: tuple[str, ...] = (
    "constant_imputation",
    "assay_limit",
    "unit_mix",
    "day_gaps",
    "after_death",
    "few_events",
)


@dataclass(frozen=True)
class Flag:
    """One suspected artefact: ``kind`` (of :data:`KINDS`), what it concerns (an analyte key,
    ``task@landmark`` or ``cohort``), the evidence, a suggested fix and its numbers."""

    kind: str
    subject: str
    evidence: str
    fix: str
    numbers: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class FlagRules:
    """Thresholds of the flags (defaults stated here, every one overridable).

    Value flags look at assay analytes only (cytokines and labs: vital signs and support rows
    are settings or coarse readings whose repeated values are real) and at rows written as
    plain numbers (a '<' / '>' qualifier already says "limit").

    - a *spike* is a value whose count is ≥ ``spike_ratio`` × the largest count among its
      ``spike_neighbours`` nearest distinct values on each side (a rounded lab has many ties,
      but its neighbours have as many);
    - constant imputation: a spike holding ≥ ``imputation_share`` of the analyte's values,
      in ≥ ``imputation_patients`` patients and ≥ ``imputation_patient_share`` of those with
      the analyte;
    - assay limit: a spike of ≥ ``limit_count`` values in ≥ ``limit_patients`` patients with
      at most ``limit_beyond`` of the values (and at most ``limit_beyond_max`` values) beyond it;
    - unit mix: in a time window up to the last landmark with ≥ ``unit_min_values`` values
      (at most ``unit_sample`` used), a two-component Gaussian mixture of the log10 values
      beats one component by ≥ ``unit_bic_gain`` BIC, each component holds ≥
      ``unit_min_weight``, the components are apart by log10 of a factor in ``unit_factors`` ±
      ``unit_tolerance`` decades, clearly separate (Ashman's D ≥ ``unit_ashman_d``) and
      shifted copies of each other (sd ratio ≤ ``unit_sd_ratio``);
    - day gaps: ≥ ``gap_patient_share`` of patients miss ≥ ``gap_days`` consecutive days
      without any measurement between their first and last measured day up to the last
      landmark;
    - after death: ≥ ``after_death_rows`` measurement rows timed after the patient's death;
    - few events: fewer eligible patients than Riley's minimum sample size (the criteria
      ``features.sample_size`` applies, as training does) for a model with
      ``min_parameters`` candidate parameters (1 = the smallest model training fits,
      m-EASIX), or fewer than 2 patients in the smaller outcome class (training then skips
      the landmark).
    """

    spike_ratio: float = 3.0
    spike_neighbours: int = 2
    imputation_share: float = 0.10
    imputation_patients: int = 5
    imputation_patient_share: float = 0.10
    limit_count: int = 5
    limit_patients: int = 3
    limit_beyond: float = 0.01
    limit_beyond_max: int = 3
    unit_factors: tuple[float, ...] = (10.0, 1000.0)
    unit_tolerance: float = 0.2
    unit_min_weight: float = 0.1
    unit_ashman_d: float = 2.5
    unit_bic_gain: float = 10.0
    unit_sd_ratio: float = 1.5
    unit_min_values: int = 50
    unit_sample: int = 5000
    gap_days: int = 2
    gap_patient_share: float = 0.05
    after_death_rows: int = 1
    min_parameters: int = 1

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            values = value if isinstance(value, tuple) else (value,)
            if not values or any(not v > 0 for v in values):
                raise CrsRiskError(f"flag rule {f.name} must be > 0, got {value!r}")

    def to_dict(self) -> dict[str, object]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_mapping(cls, values: dict[str, object] | None) -> FlagRules:
        """Rules with the given thresholds overridden (unknown names are a clear error)."""
        values = dict(values or {})
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise CrsRiskError(
                f"unknown flag rule(s) {unknown}: choose from {', '.join(sorted(names))}"
            )
        for k, v in values.items():
            if isinstance(v, list):
                values[k] = tuple(float(x) for x in v)
        try:
            return cls(**values)  # type: ignore[arg-type]  # names checked above, types here
        except TypeError as exc:
            raise CrsRiskError(f"flag rules: {exc}") from exc
