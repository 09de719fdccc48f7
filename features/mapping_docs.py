"""Generate ``docs/import-mapping.md`` from the mapping models and the worked examples.

Every key of the mapping format is rendered from the pydantic models of :mod:`features.mapping`
(type, default, description), so the reference cannot drift from the code. The worked examples
are real files: ``experiments/mappings/car22.yaml`` and the extracts under ``docs/examples/``;
their imported events are produced by running the importer at generation time. A test fails when
the committed file differs from the output, so regenerate after a change::

    python -m features.mapping_docs > docs/import-mapping.md
"""

from __future__ import annotations

import sys
import types
import typing
from pathlib import Path

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from features.importer import convert
from features.mapping import (
    AnalyteValues,
    ColumnSpec,
    InfusionSpec,
    LongEventsSource,
    LongMeasurementsSource,
    Mapping,
    MeasureRule,
    PatientEventRule,
    PatientMeasurementsSource,
    PatientsSource,
    PerPatientEventsSource,
    RowEventRule,
    TimeSpec,
    WideMeasurementsSource,
    load_mapping,
)
from features.vocabulary import OxygenDevice

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "docs" / "examples"
CAR22_MAPPING = REPO / "experiments" / "mappings" / "car22.yaml"
SOURCE_KINDS: tuple[type[BaseModel], ...] = (
    PatientsSource,
    PerPatientEventsSource,
    LongMeasurementsSource,
    WideMeasurementsSource,
    PatientMeasurementsSource,
    LongEventsSource,
)
PARTS: tuple[type[BaseModel], ...] = (
    ColumnSpec,
    TimeSpec,
    MeasureRule,
    AnalyteValues,
    PatientEventRule,
    RowEventRule,
    InfusionSpec,
)
_NAMES = {
    ColumnSpec: "column",
    TimeSpec: "time",
    MeasureRule: "measurement rule",
    AnalyteValues: "analyte values",
    PatientEventRule: "patient event rule",
    RowEventRule: "row event rule",
    InfusionSpec: "infusion",
}
_COMMON = ("name", "file", "sheet", "header_rows", "delimiter", "na_values", "id_column")


def _type(annotation: object) -> str:
    """Readable type of a field: ``column``, ``list of time``, ``days | hours | date``."""
    if annotation in _NAMES:
        return _NAMES[annotation]
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if origin is typing.Annotated:
        return _type(args[0])
    if origin in (typing.Union, types.UnionType):
        parts = [_type(a) for a in args if a is not type(None)]
        return " \\| ".join(dict.fromkeys(parts))
    if origin is list:
        inner = _type(args[0])
        return "list of sources" if "source" in inner else f"list of {inner}"
    if origin is dict:
        return f"map of {_type(args[0])} → {_type(args[1])}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "source"
    names: dict[object, str] = {bool: "boolean", int: "integer", float: "number", str: "text"}
    return names.get(annotation, "value")


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    if field.default_factory is not None:
        value = field.get_default(call_default_factory=True)  # the factory's value
        return "empty" if not value else ", ".join(map(str, value))
    return "—" if field.default is None else f"`{field.default}`"


def _fields(model: type[BaseModel], skip: tuple[str, ...] = ()) -> list[str]:
    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for name, field in model.model_fields.items():
        if name in skip or name == "kind":
            continue
        desc = (field.description or "").replace("|", "\\|")
        lines.append(f"| `{name}` | {_type(field.annotation)} | {_default(field)} | {desc} |")
    return lines


def _doc(model: type[BaseModel]) -> str:
    return " ".join((model.__doc__ or "").split()).replace("``", "`")


def _code(text: str, lang: str) -> list[str]:
    return [f"```{lang}", text.rstrip("\n"), "```"]


def _imported_events(folder: Path) -> list[str]:
    """The events an example imports to (the importer is run; nothing is written)."""
    mapping = load_mapping(folder / "mapping.yaml")
    events = convert(mapping, [folder], "mapping.yaml")[2]
    shown = events.astype(object).where(events.notna(), "")
    lines = ["| " + " | ".join(shown.columns) + " |", "|" + "---|" * len(shown.columns)]
    for row in shown.itertuples(index=False):
        lines.append("| " + " | ".join(str(v) for v in row) + " |")
    return lines


def _example(folder: Path, title: str, intro: str) -> list[str]:
    lines = [f"### {title}", "", intro, ""]
    for data in sorted(folder.glob("*.csv")):
        lines += [f"`{data.name}`:", "", *_code(data.read_text(encoding="utf-8"), "text"), ""]
    mapping = (folder / "mapping.yaml").read_text(encoding="utf-8")
    lines += ["`mapping.yaml`:", "", *_code(mapping, "yaml"), ""]
    rel = folder.relative_to(REPO)
    lines += [
        f"`crs-risk cohort import --mapping {rel}/mapping.yaml --out cohort {rel}` writes these "
        "events:",
        "",
        *_imported_events(folder),
        "",
    ]
    return lines


def render_import_mapping() -> str:
    """The full text of ``docs/import-mapping.md``."""
    codes = ", ".join(f"{d.value} {d.name.lower().replace('_', ' ')}" for d in OxygenDevice)
    lines = [
        "# Import mapping",
        "",
        "<!-- GENERATED by `python -m features.mapping_docs > docs/import-mapping.md` from "
        "features/mapping/, experiments/mappings/car22.yaml and docs/examples/; do not edit "
        "by hand. -->",
        "",
        "A hospital extract (CSV/TSV or Excel files in any shape) becomes a cohort folder "
        "([cohort-format.md](cohort-format.md)) with a mapping file alone — no pandas, nothing "
        "edited by hand:",
        "",
        "```sh",
        "crs-risk cohort import --mapping mapping.yaml --out COHORT EXTRACT_FILES_OR_FOLDERS…",
        "```",
        "",
        "A bad mapping exits with code 2 and one line per problem naming the file, the YAML "
        "path (`sources[2].time.unit`) and the rule; a bad cell names file, row, column and "
        "rule, and where it helps the kind of the cell, e.g. `labs.csv row 2, column D "
        "('result'): value is not a number; the cell holds text; …`. Nothing is written unless "
        "every source converts. Messages never show a cell's content (a misplaced cell may hold "
        "a name or a hospital number; units and analyte names included: distinct unaccepted "
        "ones are counted and named by their first row) nor a patient id; headers and the "
        "mapping's own entries (value-map keys, placeholders) are shown.",
        "",
        "## Rules",
        "",
        "- **Time known.** `hours_from_infusion` is when a value became known. A whole day "
        "after infusion (or a date without time of day) is *day-granular* and is placed at the "
        "**end of its day** (day d → 24·d + 24 h) unless the mapping says otherwise with "
        "`placement` (`start_of_day`, e.g. samples drawn before the infusion; an hour of the "
        "day; `exact`). A day-0 value is therefore never pre-infusion (0 h) unless its "
        'mapping declares it. A fractional day (a "true date" 7.25), a time in hours and a '
        "date-time are exact. The import report states the placement each source used.",
        "- **Calendar dates** (`unit: date`) count from the patient's infusion date(-time) "
        "(`infusion`); no date is written to the cohort. An infusion date without time of day "
        "counts from the start of that day; a time of 00:00 is read as a date without time.",
        "- **Missing.** An empty cell is *not measured* (counted); `na_values` and "
        "`analyte_values.missing` (a constant imputed for every missing cell) mean missing "
        "(counted); anything else that does not parse is an error.",
        "- **Value maps** (`values`) must cover every value present; `null` maps to missing. "
        "On measurement columns they turn text codes into numbers (oxygen device codes: "
        f"{codes}; flags: 1 = yes, 0 = no).",
        "- **Assay limits.** `analyte_values.ceiling` / `floor` turn a limit written as a "
        "number into the `>` / `<` qualifier; like `missing`, they are values in the analyte's "
        "canonical unit (the unit `cohort profile` prints), compared after unit conversion. "
        "`units_before` reads a column's rows dated before a date in another unit.",
        "- **Duplicates.** An identical repeat (same patient, time, analyte or event) is "
        "dropped and counted; a conflicting one is an error (or `duplicates: keep_first`). "
        "Two CRS or ICANS grades of one patient at one time are an error naming both rows "
        "(or `grade_conflicts: max`), counted in the report.",
        "- **No CRS information.** With `no_crs_record: lost_to_follow_up`, a patient "
        "without any CRS event gets a `lost_to_follow_up` event with unknown time: the "
        'outcome is unknown (excluded and counted in training), never "no CRS".',
        "- **Columns** are addressed by header text, by header path across header rows "
        "(`Day 7 (5-9) Timepoint / CRP (mg/L)`; any unique trailing part works), by `letter` "
        "or by `position`. In a `match` rule, `{group}` in a time column or value is filled "
        "from the named groups of the regular expression; other braces are plain text.",
        "",
        "## Top level",
        "",
        *_fields(Mapping),
        "",
        "## Sources",
        "",
        "Every source has these keys, then `kind` and the keys of its kind:",
        "",
        *_fields(
            PatientsSource, skip=tuple(f for f in PatientsSource.model_fields if f not in _COMMON)
        ),
        "",
    ]
    for model in SOURCE_KINDS:
        kind = typing.get_args(model.model_fields["kind"].annotation)[0]
        lines += [f"### `kind: {kind}`", "", _doc(model), "", *_fields(model, skip=_COMMON), ""]
    lines += ["## Parts", ""]
    for model in PARTS:
        lines += [f"### {_NAMES[model]}", "", _doc(model), "", *_fields(model), ""]
    lines += [
        "## Worked examples",
        "",
        "### The car22 workbook",
        "",
        "The NCI CD22 CAR T cohort (`../shared/data/car22`): a workbook with three header "
        "rows, windowed labs with the exact draw day in a neighbouring column, daily cytokine "
        "panels, per-patient outcome flags in a second file. "
        "`crs-risk cohort import --mapping experiments/mappings/car22.yaml --out data/car22 "
        "../shared/data/car22`:",
        "",
        *_code(CAR22_MAPPING.read_text(encoding="utf-8"), "yaml"),
        "",
        *_example(
            EXAMPLES / "patient-day",
            "A wide patient-day CSV with a daily CRS grade and daily drug flags",
            "One row per patient and day after infusion; the patient columns repeat on every "
            "row; sex as text; oxygen device, hypotension and vasopressin as text codes; a "
            "daily CRS grade (onset, changes and maximum are derived); daily tocilizumab, "
            "steroid (with the reason) and ICU flags. Each day is known at its end.",
        ),
        *_example(
            EXAMPLES / "lab-export",
            "A long laboratory export with dates",
            "One row per result with the collection date-time, the infusion date in the patient "
            "table, lab units as the hospital spells them (`mcg/L`, `K/uL`, `UI/L`, `G/L`), and "
            "an event list with calendar dates and the reason for each drug.",
        ),
    ]
    return "\n".join(lines)


def main() -> None:
    """Print the document: ``python -m features.mapping_docs > docs/import-mapping.md``."""
    sys.stdout.write(render_import_mapping())


if __name__ == "__main__":
    main()
