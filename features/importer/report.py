"""The import report: per source rows read, what they became, what was dropped (by reason) and
how its times were placed; totals of what was written."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

R_EMPTY = "empty = not measured"
R_EMPTY_ROW = "empty row"
R_EMPTY_ID = "empty patient id"
R_NOT_IN_PATIENTS = "patient not in the patient table"
R_NO_TIME = "time empty and no fallback"
R_DUPLICATE = "duplicate of an identical value already imported (same patient, time, analyte)"
R_DUPLICATE_EVENT = "duplicate of an identical event already imported"
R_CONFLICT_KEPT = "conflicting duplicate dropped (duplicates: keep_first)"
R_GRADE_MAX = "conflicting grades at one time: lower grade dropped (grade_conflicts: max)"
R_MAPPED_MISSING = "mapped to missing by the value map"
R_IMPUTED = "imputed constant = missing (analyte_values.missing)"
R_REPEATED_PATIENT = "identical repeat of a patient row (rows: repeated)"


def placeholder_reason(entry: str) -> str:
    """Drop reason of a placeholder cell, named by the mapping's ``na_values`` entry it matched
    (configuration, not the cell)."""
    return f"placeholder {entry!r} = missing"


def rows_text(n: int) -> str:
    return f"{n} row" + ("" if n == 1 else "s")


@dataclass
class SourceReport:
    """What one source contributed and what was dropped, by reason."""

    label: str
    kind: str
    rows: int = 0
    columns_used: int = 0
    patients: int = 0
    measurements: int = 0
    events: int = 0
    dropped: Counter = field(default_factory=Counter)
    placements: set[str] = field(default_factory=set)
    grade_conflicts: int = 0
    unmatched: list[str] = field(default_factory=list)  # analyte_values that matched no value
    dated_units: Counter = field(default_factory=Counter)  # (analyte, date, unit) → rows

    def drop(self, reason: str, n: int = 1) -> None:
        if n:
            self.dropped[reason] += n


@dataclass
class ImportReport:
    """Result of an import: per source rows read and dropped (by reason), totals written."""

    mapping: str
    out: Path
    fmt: str
    sources: list[SourceReport]
    n_patients: int = 0
    n_measurements: int = 0
    n_events: int = 0
    analytes: dict[str, int] = field(default_factory=dict)
    event_counts: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    lost_to_follow_up: int = 0
    no_crs_information: int = 0
    """Patients without any CRS event from any source (``assemble.no_crs_information``)."""
    no_crs_record: str = "nothing"
    no_crs_record_set: bool = False
    """Whether the mapping set ``no_crs_record`` itself (else the default applied)."""
    records_crs: bool = True
    """Whether any source of the mapping records CRS at all."""
    ok: bool = True

    def no_crs_lines(self) -> list[str]:
        """How many patients have no CRS information and what ``no_crs_record`` did with them
        (issue 11 §3): always one line; a warning line when they are read as "no CRS" without
        the mapping saying so."""
        n = self.no_crs_information
        head = f"no CRS information: {n} patients → "
        if self.no_crs_record == "lost_to_follow_up":
            return [
                head + "lost_to_follow_up (no_crs_record: lost_to_follow_up): outcome unknown, "
                "excluded from training and counted"
            ]
        if not self.records_crs:
            lines = [head + 'read as "no CRS": no source records CRS']
            if n:
                lines.append(
                    f'warning: every one of these {n} patients is read as "no CRS" (a negative '
                    "in training): map a crs_grade column, a CRS event rule or a long_events "
                    "source before training on this cohort"
                )
            return lines
        default = "" if self.no_crs_record_set else ", the default"
        lines = [head + f'read as "no CRS" (no_crs_record: nothing{default})']
        if n and not self.no_crs_record_set:
            lines.append(
                f'warning: {n} patients without any CRS information are read as "no CRS" (a '
                "negative in training) because the mapping does not set no_crs_record; if their "
                "outcome is unknown, add `no_crs_record: lost_to_follow_up` to the mapping "
                "(they are then excluded and counted), or `no_crs_record: nothing` to keep "
                "this reading and silence this warning"
            )
        return lines

    def render(self) -> str:
        lines = [f"import with mapping {self.mapping} → {self.out} ({self.fmt})"]
        for s in self.sources:
            made = [
                f"{n} {what}"
                for n, what in (
                    (s.patients, "patients"),
                    (s.measurements, "measurements"),
                    (s.events, "events"),
                )
                if n
            ]
            cols = f", {s.columns_used} columns used" if s.columns_used else ""
            lines.append(
                f"- {s.label} [{s.kind}]: {s.rows} rows read{cols} → "
                + (", ".join(made) if made else "nothing")
            )
            if s.placements:
                lines.append(f"    times: {'; '.join(sorted(s.placements))}")
            if s.grade_conflicts:
                lines.append(f"    conflicting grades at one time: {s.grade_conflicts}")
            for reason, n in sorted(s.dropped.items(), key=lambda kv: (-kv[1], kv[0])):
                lines.append(f"    dropped {n}: {reason}")
            for (key, when, unit), n in sorted(s.dated_units.items()):
                lines.append(
                    f"    {key}: {rows_text(n)} dated before {when} read in {unit} (units_before)"
                )
            lines.extend(f"    {u}" for u in s.unmatched)
        lines.append(
            f"written: {self.n_patients} patients, {self.n_measurements} measurements, "
            f"{self.n_events} events"
        )
        if self.analytes:
            lines.append(
                "measurements by analyte: "
                + ", ".join(f"{k} {v}" for k, v in sorted(self.analytes.items()))
            )
        if self.event_counts:
            lines.append(
                "events: " + ", ".join(f"{k} {v}" for k, v in sorted(self.event_counts.items()))
            )
        lines.extend(self.no_crs_lines())
        unmatched = sum(len(s.unmatched) for s in self.sources)
        if unmatched:
            lines.append(
                f"analyte_values matching no value: {unmatched} (in the canonical unit? see the "
                "sources above)"
            )
        if self.warnings:
            lines.append(f"validation warnings ({len(self.warnings)}):")
            lines.extend(f"  {w}" for w in self.warnings)
        return "\n".join(lines)
