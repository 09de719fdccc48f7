"""The cohort data contract, declared once: tables, columns, types, allowed values, ranges.

A cohort is a folder with three tables (``.csv`` or ``.parquet``): ``patients`` (one row per
infusion), ``measurements`` (long: one value of one analyte at one time) and ``events`` (timed
treatments and outcomes). Times are hours from CAR T infusion (negative = before). No calendar
dates and no names appear anywhere (../shared/DESIGN.md).

Validation (``features.validation``), the loader (``features.io``), the importer, the simulator and
the generated ``docs/cohort-format.md`` all read these declarations, so the contract lives here
and nowhere else. ASTCT grades follow Lee DW et al. 2019 (BBMT 25:625): CRS 0–5, ICANS 0–5.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

DType = Literal["string", "float", "int", "bool", "category"]

TABLES: tuple[str, ...] = ("patients", "measurements", "events")
FILE_SUFFIXES: tuple[str, ...] = (".parquet", ".csv")

PRODUCTS: tuple[str, ...] = ("tisagenlecleucel", "ARI-0001", "CD22-CAR", "other")
SEXES: tuple[str, ...] = ("F", "M")
LYMPHODEPLETION: tuple[str, ...] = ("flu_cy", "other", "none")
QUALIFIERS: tuple[str, ...] = ("<", ">")

# Event vocabulary. ``grade`` is required for the graded events and must be empty otherwise.
GRADED_EVENTS: dict[str, tuple[int, int]] = {
    "crs_onset": (1, 4),  # first grade of the episode (fever ≥38 °C makes at least grade 1)
    "crs_grade": (0, 5),  # the grade in force from this time on (5 = death from CRS)
    "crs_max_grade": (0, 5),  # per-patient maximum when only the summary is known; timed at onset
    "icans": (1, 5),  # ICANS grade in force from this time on
}
DRUG_EVENTS: tuple[str, ...] = ("tocilizumab", "siltuximab", "anakinra", "corticosteroids")
SECOND_LINE_AGENTS: tuple[str, ...] = ("siltuximab", "anakinra", "corticosteroids")
OTHER_EVENTS: tuple[str, ...] = (
    "crs_resolved",
    "icu_admission",
    "icu_discharge",
    "death",
    # follow-up of CRS ended at this time (empty time = no CRS information at all): the outcome
    # after it is unknown, never "no CRS" (../shared/DESIGN.md, "The clinical question")
    "lost_to_follow_up",
)
# Why a drug was given. Only drug events carry it; empty = not recorded. Corticosteroids given
# for ICANS (or another reason) never count as second-line CRS treatment.
INDICATIONS: tuple[str, ...] = ("crs", "icans", "other")
EVENTS: tuple[str, ...] = (*GRADED_EVENTS, *DRUG_EVENTS, *OTHER_EVENTS)


@dataclass(frozen=True)
class Column:
    """One column of a cohort table.

    ``required`` columns must be present in the file; optional columns may be absent (the loader
    adds them as all-missing). ``nullable`` says whether a present column may hold missing values.
    ``hard`` bounds are impossible outside (error); ``soft`` bounds implausible (warning).
    """

    name: str
    dtype: DType
    description: str
    required: bool = False
    nullable: bool = True
    allowed: tuple[str, ...] | None = None
    hard: tuple[float, float] | None = None
    soft: tuple[float, float] | None = None
    unit: str | None = None


@dataclass(frozen=True)
class Table:
    name: str
    description: str
    columns: tuple[Column, ...]
    key: tuple[str, ...] = ()

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


PATIENT_ID = Column(
    "patient_id",
    "string",
    "Opaque identifier of one infusion; never leaves the cohort folder.",
    required=True,
    nullable=False,
)
HOURS = Column(
    "hours_from_infusion",
    "float",
    "Time relative to CAR T infusion in hours (negative = before infusion).",
    required=True,
    nullable=False,
    hard=(-24.0 * 120, 24.0 * 365 * 5),
    soft=(-24.0 * 30, 24.0 * 365),
    unit="h",
)

PATIENTS = Table(
    "patients",
    "One row per CAR T infusion: characteristics and pre-infusion disease burden.",
    (
        PATIENT_ID,
        Column("center", "string", "Treating centre (code).", required=True, nullable=False),
        Column("age_years", "float", "Age at infusion.", hard=(0, 100), soft=(0.5, 30), unit="y"),
        Column("sex", "category", "Sex.", allowed=SEXES),
        Column("weight_kg", "float", "Body weight.", hard=(0.5, 400), soft=(5, 150), unit="kg"),
        Column("product", "category", "CAR T product.", allowed=PRODUCTS),
        Column("prior_hsct", "bool", "Any allogeneic HSCT before CAR T."),
        Column("prior_blinatumomab", "bool", "Blinatumomab before CAR T."),
        Column("prior_inotuzumab", "bool", "Inotuzumab ozogamicin before CAR T."),
        Column(
            "marrow_blasts_pct",
            "float",
            "Bone-marrow blasts immediately before infusion.",
            hard=(0, 100),
            soft=(0, 100),
            unit="%",
        ),
        Column("extramedullary_disease", "bool", "Extramedullary disease before infusion."),
        Column(
            "lymphodepletion",
            "category",
            "Lymphodepleting chemotherapy.",
            allowed=LYMPHODEPLETION,
        ),
        Column(
            "car_t_dose",
            "float",
            "CAR T cell dose.",
            hard=(0, 1e4),
            soft=(0.01, 50),
            unit="10^6 cells/kg",
        ),
    ),
    key=("patient_id",),
)

MEASUREMENTS = Table(
    "measurements",
    "Long table: one value of one analyte (lab, cytokine, vital sign or support row) at one time.",
    (
        PATIENT_ID,
        HOURS,
        Column(
            "analyte",
            "string",
            "Analyte key or alias from features.vocabulary.ANALYTES.",
            required=True,
            nullable=False,
        ),
        Column("value", "float", "Measured value in `unit`.", required=True, nullable=False),
        Column(
            "unit",
            "string",
            "Unit of `value`; converted to the analyte's canonical unit on load.",
            required=True,
            nullable=False,
        ),
        Column(
            "qualifier",
            "category",
            "'<' = below the assay's limit of detection (value = the limit); '>' = above.",
            allowed=QUALIFIERS,
        ),
    ),
    key=("patient_id", "hours_from_infusion", "analyte"),
)

EVENTS_TABLE = Table(
    "events",
    "Timed treatments and outcomes: CRS onset and grade changes, drugs, ICANS, ICU, death.",
    (
        PATIENT_ID,
        Column(
            "hours_from_infusion",
            "float",
            "Time of the event in hours from infusion; empty = time unknown (such an event never "
            "enters a feature, it can only define an outcome).",
            required=True,
            nullable=True,
            hard=HOURS.hard,
            soft=HOURS.soft,
            unit="h",
        ),
        Column("event", "category", "Event type.", required=True, nullable=False, allowed=EVENTS),
        Column(
            "grade",
            "int",
            "ASTCT grade for crs_onset, crs_grade, crs_max_grade and icans; empty otherwise.",
            hard=(0, 5),
        ),
        Column(
            "dose_mg_per_kg",
            "float",
            "Drug dose for drug events (optional).",
            hard=(0, 1000),
            soft=(0, 30),
            unit="mg/kg",
        ),
        Column(
            "indication",
            "category",
            "Why a drug event was given: crs, icans or other (optional; empty = not recorded; "
            "drug events only).",
            allowed=INDICATIONS,
        ),
    ),
    key=("patient_id", "hours_from_infusion", "event"),
)

SCHEMA: dict[str, Table] = {t.name: t for t in (PATIENTS, MEASUREMENTS, EVENTS_TABLE)}
