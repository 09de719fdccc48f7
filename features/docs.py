"""Generate ``docs/cohort-format.md`` from the contract declarations.

The tables, columns, event vocabulary and analyte table are rendered from ``features.schema``
and ``features.vocabulary``; the how-to text describes what ``features.io`` and
``features.validation`` do. A test fails when the committed file differs from the output, so
regenerate after changing a declaration::

    python -m features.docs > docs/cohort-format.md
"""

from __future__ import annotations

import math
import sys

from features.schema import (
    DRUG_EVENTS,
    EVENTS,
    GRADED_EVENTS,
    OTHER_EVENTS,
    SCHEMA,
    SECOND_LINE_AGENTS,
    Column,
)
from features.validation import FALSE_TOKENS, MAX_LISTED, NULL_TOKENS, TIME_WINDOWS, TRUE_TOKENS
from features.vocabulary import ANALYTES, OxygenDevice, UnitConversion

_EVENT_NOTES: dict[str, str] = {
    "crs_onset": "first CRS sign (fever ≥38 °C); one per patient",
    "crs_grade": "ASTCT grade in force from this time on (5 = death from CRS)",
    "crs_max_grade": "maximum grade when only the summary is known; timed at onset",
    "icans": "ICANS grade in force from this time on",
    "tocilizumab": "one row per dose",
    "siltuximab": "one row per dose",
    "anakinra": "one row per dose (or start of a course)",
    "corticosteroids": "start of each steroid course given for CRS/ICANS",
    "crs_resolved": "CRS resolved",
    "icu_admission": "admitted to intensive care",
    "icu_discharge": "discharged from intensive care",
    "death": "death from any cause; once per patient",
}


def _num(x: float) -> str:
    if math.isinf(x):
        return "∞" if x > 0 else "−∞"
    return f"{x:g}"


def _range(bounds: tuple[float, float] | None) -> str:
    return "" if bounds is None else f"{_num(bounds[0])} – {_num(bounds[1])}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _column_row(c: Column) -> str:
    allowed = ", ".join(f"`{a}`" for a in c.allowed) if c.allowed else ""
    if c.name == "event":
        allowed = "see *Events*"
    cells = [
        f"`{c.name}`",
        c.dtype,
        _yes(c.required),
        _yes(c.nullable),
        allowed,
        _range(c.hard),
        _range(c.soft),
        c.unit or "",
        c.description,
    ]
    return "| " + " | ".join(_cell(x) for x in cells) + " |"


def _factor(conv: UnitConversion) -> str:
    if conv.offset == 0:
        return "× 1" if conv.scale == 1 else f"× {conv.scale:.6g}"
    sign = "+" if conv.offset > 0 else "−"
    return f"× {conv.scale:.6g} {sign} {abs(conv.offset):.6g}"


def _tables() -> list[str]:
    lines: list[str] = []
    for table in SCHEMA.values():
        lines += [
            f"### `{table.name}`",
            "",
            table.description,
            "",
            f"Key columns (canonical sort order): {', '.join(f'`{k}`' for k in table.key)}.",
            "",
            "| column | type | required | nullable | allowed | hard range | soft range | unit "
            "| description |",
            "|---|---|---|---|---|---|---|---|---|",
            *(_column_row(c) for c in table.columns),
            "",
        ]
    return lines


def _events() -> list[str]:
    lines = [
        "| event | kind | grade | notes |",
        "|---|---|---|---|",
    ]
    for e in EVENTS:
        if e in GRADED_EVENTS:
            lo, hi = GRADED_EVENTS[e]
            kind, grade = "graded", f"{lo} – {hi}"
        elif e in DRUG_EVENTS:
            second = " (second-line)" if e in SECOND_LINE_AGENTS else " (first-line anti-IL-6R)"
            kind, grade = "drug" + second, "empty"
        else:
            kind, grade = "other", "empty"
        assert e in GRADED_EVENTS or e in DRUG_EVENTS or e in OTHER_EVENTS
        lines.append(f"| `{e}` | {kind} | {grade} | {_cell(_EVENT_NOTES.get(e, ''))} |")
    return lines


def _analytes() -> list[str]:
    lines = [
        "| key | label | group | canonical unit | accepted units (→ canonical) | LOINC "
        "| hard range | soft range | aliases |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for a in ANALYTES.values():
        units = "; ".join(f"{u} {_factor(conv)}" for u, conv in a.units.items())
        kind = " (whole numbers)" if a.integer else ""
        aliases = ", ".join(a.aliases)
        cells = [
            f"`{a.key}`",
            a.label,
            a.group,
            a.canonical_unit + kind,
            units,
            a.loinc or "",
            _range(a.hard),
            _range(a.soft),
            aliases,
        ]
        lines.append("| " + " | ".join(_cell(x) for x in cells) + " |")
    return lines


def _oxygen() -> list[str]:
    return [
        "| code | device |",
        "|---|---|",
        *(f"| {d.value} | {d.name.lower().replace('_', ' ')} |" for d in OxygenDevice),
    ]


def render_cohort_format() -> str:
    """The full text of ``docs/cohort-format.md``."""
    windows = ", ".join(w[0] for w in TIME_WINDOWS)
    nulls = ", ".join(f"`{t}`" for t in NULL_TOKENS if t) + " and the empty cell"
    trues = "/".join(sorted(TRUE_TOKENS))
    falses = "/".join(sorted(FALSE_TOKENS))
    lines = [
        "# Cohort format",
        "",
        "<!-- GENERATED by `python -m features.docs > docs/cohort-format.md` from "
        "features/schema.py and features/vocabulary.py; do not edit by hand. -->",
        "",
        "A cohort is one folder with three tables. `crs-risk cohort validate DIR` checks a folder "
        "and lists every problem; `features.io.load_cohort(DIR)` is the only way into the "
        "pipeline and refuses an invalid folder.",
        "",
        "## How to prepare a cohort",
        "",
        "- **Folder**: `patients`, `measurements` and `events`, each as `NAME.csv` or "
        "`NAME.parquet` (lower-case names; formats may differ between tables). A table present "
        "in both formats is an error (one copy would be stale). Other files are ignored.",
        "- **CSV**: UTF-8, comma-separated, first line = header, `.` as decimal point. Every "
        "column is read as text first, so identifiers keep leading zeros. Missing values: "
        f"{nulls}. Booleans: {trues} or {falses} (any case). Category values are matched "
        "without regard to case. Blank lines are skipped; a row whose cells are all empty is "
        "ignored with a warning.",
        "- **Parquet**: columns keep their stored types; numbers may be stored as numbers or "
        "text; an integer `patient_id` is read as text.",
        "- **Time**: `hours_from_infusion` is hours from the CAR T infusion (negative = before "
        "it). No calendar dates and no names are needed anywhere.",
        "- **Patients**: `patient_id` is an opaque code of one infusion; it never leaves the "
        "folder and is never printed in a message.",
        "- **Measurements** are long: one row per value. `analyte` is a key or alias from the "
        "analyte table; `unit` any accepted unit of that analyte (spelling is normalised: case, "
        "spaces, `u`/`μ`/`µ`, `x10^9/L`, `10*9/L`, `degF`…). Values are converted to the "
        "canonical unit on load. Support rows (`hypotension`, `vasopressors`, `oxygen_device`, "
        "`oxygen_flow`) let the ASTCT grade be derived.",
        "- **Limits of detection**: write the limit as `value` and `<` (below) or `>` (above) "
        "in `qualifier`.",
        "- **Unknown event times**: leave `hours_from_infusion` empty. Such an event can define "
        "an outcome (e.g. `crs_max_grade`) but never enters a feature.",
        "- **Duplicates**: the same patient, time and analyte twice is an error when the values "
        "differ and a warning (second row dropped) when they are identical.",
        "",
        "## What validation checks",
        "",
        "Errors make the cohort invalid; warnings are reported and the cohort still loads.",
        "",
        "- files: each table present exactly once and readable; required columns present; "
        "unknown columns are a warning and are ignored;",
        "- cells: numbers in numeric columns, whole numbers in integer columns, booleans in "
        "boolean columns, no missing value in non-nullable columns, category values in the "
        "allowed set;",
        "- ranges: outside the *hard* range is an error (impossible), outside the *soft* range "
        "a warning (implausible); measurements are checked after conversion to the canonical "
        "unit (a 140 °F temperature is 60 °C, an error);",
        "- measurements: known analyte, unit accepted for that analyte, whole numbers for "
        "code/count analytes, no conflicting duplicates;",
        "- patients and links: one row per `patient_id`; every measurement and event belongs to "
        "a patient of the patients table;",
        "- events: graded events carry a grade within the event's range, other events carry "
        "none; per patient at most one `crs_onset` and one `death`; `crs_grade`, "
        "`crs_resolved` and `crs_max_grade` not before `crs_onset`; no event after `death`; "
        "each `icu_discharge` not before its `icu_admission`.",
        "",
        "**Rows** in messages are data rows: row 1 is the first record after the header, so in "
        "a CSV file without blank lines the line number is row + 1 (the same numbering is used "
        "for Parquet). Each message reads `file:row column=… — rule`, followed where it helps "
        "by the kind of the offending cell, e.g. `patients.csv:3 column=age_years — not a "
        "number; the cell holds text` or `measurements.csv:4 column=value — impossible "
        "temperature value: outside 25–45 °C; the value, converted to °C, is above this "
        "range`. A cell's content is never shown (a misplaced cell may hold a name or a "
        "hospital number, and messages reach terminals and logs); nor are patient "
        f"identifiers. At most {MAX_LISTED} rows are listed per rule and file, followed by a "
        "count of the rest.",
        "",
        f"The summary of a valid cohort counts patients per centre, measurements per analyte and "
        f"per time window ({windows}), events per type, events with unknown time and missing "
        "values per patient column.",
        "",
        "## Tables",
        "",
        "*hard range*: impossible outside (error); *soft range*: implausible outside (warning). "
        "Optional columns may be absent (read as all-missing).",
        "",
        *_tables(),
        "## Events",
        "",
        *_events(),
        "",
        "## Analytes",
        "",
        "Values are converted as `canonical = value × factor (+ offset)`. Ranges are in the "
        "canonical unit.",
        "",
        *_analytes(),
        "",
        "### Oxygen device codes (`oxygen_device` values, ASTCT 2019)",
        "",
        *_oxygen(),
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    """Print the generated document (``python -m features.docs > docs/cohort-format.md``)."""
    sys.stdout.write(render_cohort_format())


if __name__ == "__main__":
    main()
