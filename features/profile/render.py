"""The profile as one self-contained HTML page: inline CSS and SVG, no script, no external
resource, so it opens offline and can be attached to a ticket. Sections (ids): ``overview``,
``flags``, ``analytes``, ``events``, ``tasks``. :func:`profile_folder` writes it for a cohort
folder."""

from __future__ import annotations

import os
from html import escape
from pathlib import Path

import numpy as np

from features.errors import CrsRiskError
from features.io import load_cohort
from features.profile.analytes import AnalyteStats
from features.profile.events import GRADES
from features.profile.report import Profile, load_rules, profile_cohort
from features.profile.svg import histogram, stacked_bars

SECTIONS: tuple[tuple[str, str], ...] = (
    ("Overview", "overview"),
    ("Data-quality flags", "flags"),
    ("Analytes", "analytes"),
    ("Events", "events"),
    ("Tasks and landmarks", "tasks"),
)
CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;max-width:1200px}
table{border-collapse:collapse;margin:.5em 0 1em}td,th{border:1px solid #ccc;padding:2px 6px;
font-size:13px;text-align:right}th{background:#eee}td.l,th.l{text-align:left}
.flag{border-left:4px solid #e57373;padding:.3em .8em;margin:.5em 0;background:#fff5f5}
.fix{color:#1b5e20}.analyte{border-top:1px solid #ddd;padding-top:.5em}
.windows svg{margin-right:4px}nav a{margin-right:1em}
"""


def _table(header: list[str], rows: list[list[object]], left: int = 1) -> str:
    head = "".join(
        f'<th class="{"l" if i < left else ""}">{escape(h)}</th>' for i, h in enumerate(header)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="{"l" if i < left else ""}">{escape(str(c))}</td>' for i, c in enumerate(r)
        )
        + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _overview(p: Profile) -> str:
    return _table(
        ["", "value"],
        [
            ["source", p.source],
            ["cohort digest", p.digest],
            ["patients", p.n_patients],
            ["measurement rows", p.n_measurements],
            ["event rows", p.n_events],
            ["analytes", len(p.analytes)],
            ["time windows", ", ".join(p.windows.labels)],
            ["flags", len(p.flags)],
        ],
    )


def _flags(p: Profile) -> str:
    if not p.flags:
        items = "<p>No flag raised.</p>"
    else:
        items = "".join(
            f'<div class="flag" data-kind="{escape(f.kind)}"><b>{escape(f.kind)}</b> · '
            f"{escape(f.subject)}<br>{escape(f.evidence)}<br>"
            f'<span class="fix">Suggested fix: {escape(f.fix)}</span></div>'
            for f in p.flags
        )
    rules = _table(["threshold", "value"], [[k, v] for k, v in p.rules.to_dict().items()])
    return (
        items
        + "<details><summary>Thresholds (configurable: --rules FILE)</summary>"
        + rules
        + "</details>"
    )


def _analyte(a: AnalyteStats) -> str:
    q = a.quantiles
    head = (
        f'<div class="analyte" id="analyte-{escape(a.analyte)}"><h3>{escape(a.label)} '
        f"({escape(a.unit)})</h3><p>{a.values} values in {a.patients} patients; "
        f"qualified '&lt;' {a.below_limit}, '&gt;' {a.above_limit}; min {q[0]:.4g}, median "
        f"{q[3]:.4g}, p95 {q[5]:.4g}, max {q[6]:.4g}; values per patient: median "
        f"{a.per_patient[0]:g}, p90 {a.per_patient[1]:g}, max {a.per_patient[2]:g}</p>"
    )
    overall = histogram(
        a.histogram,
        a.bin_edges,
        log_scale=a.log_scale,
        title=f"{a.label}: all values",
        width=360,
        height=110,
    )
    per_window = "".join(
        "<figure style='display:inline-block;margin:0 6px'>"
        + histogram(
            h,
            a.bin_edges,
            log_scale=a.log_scale,
            title=f"{a.label}: {w.label}",
            width=150,
            height=70,
        )
        + f"<figcaption style='font-size:10px'>{escape(w.label)}</figcaption></figure>"
        for h, w in zip(a.histogram_by_window, a.windows, strict=True)
    )
    table = _table(
        ["window", "values", "patients", "missing (% of patients)", "values per sampled patient"],
        [
            [w.label, w.values, w.patients, f"{w.missing_pct:.0f}%", f"{w.per_patient_median:g}"]
            for w in a.windows
        ],
    )
    return head + overall + f'<div class="windows">{per_window}</div>' + table + "</div>"


def _events(p: Profile) -> str:
    e = p.events
    grades = [f"grade {g}" for g in range(GRADES)]
    days = [f"d{d}" for d in range(e.days)]
    out = [
        "<h3 id='crs-by-day'>CRS grade by day after infusion</h3>",
        f"<p>{e.with_course} patients with a timed grade course (recorded or derived from "
        f"support rows), {e.onset_only} with only the onset of a per-patient maximum grade, "
        f"{e.no_course} with no CRS course. Day d covers (24d, 24d + 24] h; d0 includes "
        "pre-infusion.</p>",
        stacked_bars(e.grade_by_day, days, grades, title="Patients by highest CRS grade per day"),
        "<h4>CRS onset day by maximum grade</h4>",
        stacked_bars(e.onset_by_max_grade, days, grades, title="CRS onset day × maximum grade"),
        _table(["maximum CRS grade", *grades], [["patients", *e.max_grade.tolist()]]),
        "<h3 id='treatment-timing'>Treatment timing relative to the grade at the time</h3>",
        _table(
            ["drug", *[f"at {g}" for g in grades], "no course yet", "time unknown"],
            [
                [d, *e.treatment_grade[d].tolist(), e.treatment_untimed[d]]
                for d in e.treatment_grade
            ],
        ),
        "<h4>Day of the first dose</h4>",
        stacked_bars(
            np.stack([e.first_dose_day[d] for d in e.first_dose_day], axis=1),
            days,
            list(e.first_dose_day),
            title="Patients by day of the first dose",
        ),
        "<h3 id='icans'>ICANS</h3>",
        _table(["maximum ICANS grade", *grades], [["patients", *e.icans_grade.tolist()]]),
        f"<p>Patients with ICANS of unknown time: {e.icans_untimed}.</p>",
        stacked_bars(e.icans_day[:, None], days, ["first ICANS"], title="Day of first ICANS"),
    ]
    return "".join(out)


def _tasks(p: Profile) -> str:
    rows = []
    for c in p.tasks:
        excluded = "; ".join(f"{r}: {k}" for r, k in c.excluded.items()) or "none"
        rows.append(
            [
                f"{c.task}@{c.landmark}",
                c.patients,
                c.eligible,
                c.positive,
                c.patients - c.eligible,
                excluded,
            ]
        )
    return _table(
        ["task @ landmark", "patients", "eligible", "positive", "excluded", "excluded by reason"],
        rows,
    ) + (
        "<p>Counted by features.tasks (the rules training applies); flags above say where "
        "a landmark has too few events for training's sample-size rule.</p>"
    )


def render_html(p: Profile) -> str:
    """The report page (no patient identifier: every figure is an aggregate)."""
    body = {
        "overview": _overview(p),
        "flags": _flags(p),
        "analytes": "".join(_analyte(a) for a in p.analytes) or "<p>No measurements.</p>",
        "events": _events(p),
        "tasks": _tasks(p),
    }
    nav = "".join(f'<a href="#{a}">{escape(t)}</a>' for t, a in SECTIONS)
    sections = "".join(
        f'<section id="{a}"><h2>{escape(t)}</h2>{body[a]}</section>' for t, a in SECTIONS
    )
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; "
        "style-src 'unsafe-inline'; img-src data:\">"
        f"<title>Cohort profile</title><style>{CSS}</style></head><body>"
        f"<h1>Cohort profile</h1><nav>{nav}</nav>{sections}"
        "<p><small>Research use only. crs-risk cohort profile.</small></p></body></html>"
    )


def profile_folder(
    directory: str | os.PathLike[str], out: Path, rules_file: Path | None = None
) -> Profile:
    """Load a cohort folder, profile it and write the self-contained HTML report to ``out``."""
    rules = load_rules(rules_file)
    if out.suffix.lower() not in (".html", ".htm"):
        raise CrsRiskError(f"--out {out}: the report is HTML, give a .html file name")
    profile = profile_cohort(load_cohort(directory), rules)
    html = render_html(profile)  # complete before anything is written
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    return profile
