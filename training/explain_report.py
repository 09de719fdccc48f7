"""``crs-risk explain``: one patient's risk and its reasons from a registered model.

The patient's feature row is built from a cohort folder at the model's landmark with the same
code as training (``features.build``, no label needed), explained with
``training.explain.ModelExplainer`` and written *locally*: a self-contained HTML page (risk,
reasons table, waterfall) or the waterfall PNG. Nothing is logged; the identifier appears only
in the local file the user asked for, never on stdout or in an error message.
"""

from __future__ import annotations

import base64
import tempfile
from dataclasses import dataclass
from pathlib import Path

import jinja2
import mlflow
import numpy as np

from features.build import build_features
from features.catalog import catalog_for
from features.errors import CrsRiskError
from features.io import load_cohort
from features.manifest import is_synthetic
from training.evaluate import allow_model_loading
from training.explain import ModelExplainer
from training.explain_attribution import PatientExplanation, format_log_odds
from training.explain_plots import waterfall_plot
from training.registry import resolve_version
from training.tracking import connect, resolve_tracking_uri

OUTCOME_PHRASES: dict[str, str] = {
    "severe_crs": "severe CRS (ASTCT grade ≥3) after {landmark}",
    "toci_refractory": "tocilizumab-refractory CRS (scored at the first tocilizumab dose)",
}


@dataclass
class PatientReport:
    """What ``crs-risk explain`` prints (no identifier) and writes (the local report)."""

    model_uri: str
    name: str
    version: str
    task: str
    landmark: str
    model: str
    explanation: PatientExplanation
    out: Path | None = None
    synthetic: bool = False  # the cohort folder's manifest says simulated (features.manifest)

    @property
    def outcome(self) -> str:
        phrase = OUTCOME_PHRASES.get(self.task, self.task)
        return phrase.format(landmark=self.landmark)

    def summary_lines(self) -> list[str]:
        e = self.explanation
        risk = f"{100 * e.probability:.0f}%"
        return [
            f"{self.name} v{self.version} ({self.model}, {self.task} @ {self.landmark})",
            f"Risk of {self.outcome}: {risk}" + (" (calibrated)" if e.calibrated else ""),
            f"Reasons, starting from the average patient's log-odds "
            f"{format_log_odds(e.base_value)} ({100 * e.base_probability:.0f}%):",
        ]

    def render(self) -> str:
        e = self.explanation
        lines = [SYNTHETIC_BANNER] if self.synthetic else []
        lines += self.summary_lines()
        lines += [f"  {line}" for line in e.lines()]
        lines.append(
            f"= log-odds {format_log_odds(e.log_odds)} "
            f"(uncalibrated {100 * e.model_probability:.0f}%)"
        )
        lines.append(CALIBRATION_NOTE)
        if self.out is not None:
            lines.append(f"written: {self.out}")
        return "\n".join(lines)


SYNTHETIC_BANNER = (
    "SYNTHETIC data: this patient comes from a simulated cohort (manifest.json); the risk "
    "describes the simulator, not a person. Not for clinical decisions."
)
CALIBRATION_NOTE = (
    "Contributions are SHAP values of the model's uncalibrated log-odds, summed per clinical "
    "variable; the risk is the calibrated probability, a monotone function of them."
)


def _write_report(report: PatientReport, patient: str, out: Path) -> None:
    """Write the waterfall PNG, or a self-contained HTML page embedding it."""

    suffix = out.suffix.lower()
    out.parent.mkdir(parents=True, exist_ok=True)
    title = f"{report.name} v{report.version} · {report.task} @ {report.landmark}"
    if suffix == ".png":
        waterfall_plot(report.explanation, out, title)
        return
    with tempfile.TemporaryDirectory(prefix="crs-risk-explain-") as tmp:
        png = waterfall_plot(report.explanation, Path(tmp) / "waterfall.png", title)
        image = "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode("ascii")
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(Path(__file__).resolve().parent / "templates")),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    html = env.get_template("explanation.html.j2").render(
        report=report,
        e=report.explanation,
        patient=patient,
        image=image,
        format_log_odds=format_log_odds,
        note=CALIBRATION_NOTE,
        banner=SYNTHETIC_BANNER if report.synthetic else "",
    )
    out.write_text(html, encoding="utf-8")


def explain_patient(
    model_uri: str,
    cohort_dir: Path,
    patient: str,
    *,
    out: Path | None = None,
    tracking_uri: str | None = None,
    top: int = 8,
) -> PatientReport:
    """One patient's risk and reasons from a registered model, written locally.

    The patient's features are built from the cohort folder at the model's landmark with the
    same code as training (no label needed). ``out`` ending in ``.html`` gets a self-contained
    page (risk, reasons table, waterfall); ``.png`` the waterfall alone. Nothing is logged.
    """

    if out is not None and Path(out).suffix.lower() not in (".html", ".png"):
        raise CrsRiskError(f"--out {Path(out).name}: the report must be .html or .png")
    folder = Path(cohort_dir)
    if not folder.is_dir():
        raise CrsRiskError(f"cohort folder not found: {folder}")
    client = connect(resolve_tracking_uri(tracking_uri))
    mv = resolve_version(client, model_uri)
    task, landmark = mv.tags.get("task"), mv.tags.get("landmark")
    if not task or not landmark:
        raise CrsRiskError(f"{model_uri}: the model version has no task/landmark tags")
    cohort = load_cohort(folder)
    table = build_features(cohort, task, landmark, require_label=False)
    rows = np.flatnonzero(table.ids.astype(str).to_numpy() == str(patient))
    if rows.size == 0:
        known = cohort.patients["patient_id"].astype(str).to_numpy()
        if str(patient) in set(known):
            reasons = "; ".join(table.summary.get("exclusions", {})) or "see the task definition"
            raise CrsRiskError(
                f"--patient: that patient is in cohort {folder.name} but not eligible for "
                f"{task} at {landmark} (exclusion reasons in this cohort: {reasons})"
            )
        raise CrsRiskError(f"--patient: no patient with that identifier in cohort {folder.name}")
    with allow_model_loading():
        model = mlflow.sklearn.load_model(f"models:/{mv.name}/{mv.version}")
    explainer = ModelExplainer(model, catalog_for(task, landmark))
    explanation = explainer.explain_row(table.X.iloc[[int(rows[0])]], top=top)
    report = PatientReport(
        model_uri,
        mv.name,
        str(mv.version),
        task,
        landmark,
        mv.tags.get("model", explainer.family),
        explanation,
        Path(out) if out is not None else None,
        synthetic=is_synthetic(folder),
    )
    if out is not None:
        _write_report(report, str(patient), Path(out))
    return report
