"""Model card of a registered version: build it (gather → context → render), log it, fetch it.

The card is assembled from what the training run logged (``training.sink``: parameters,
``metrics.json``, ``subgroups.csv``, ``paired_auroc.json``, validation plots;
``training.explain``: ``shap/importance.csv`` and figures) plus the registry and the task
definition (``features.tasks``), so it states only what was measured: ``training.card_gather``
reads, ``training.card_context`` formats, ``training.card_render`` renders.

:func:`log_model_card` writes the card beside the registered model (the LoggedModel's artifacts,
``model_card/``) and into the training run, and tags the version with its path;
``crs-risk card models:/NAME@champion`` (:func:`fetch_model_card`) retrieves it. Everything in
a card is an aggregate: counts, metrics, category levels, plots — no patient identifier.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow

from features.errors import CrsRiskError
from training.card_context import card_context
from training.card_gather import gather
from training.card_render import (
    CARD_HTML,
    CARD_MD,
    FIGURES_DIR,
    SECTIONS,
    ModelCard,
    card_sections,
    render,
)
from training.registry import resolve_version
from training.sink import log_card_files
from training.tracking import connect, resolve_tracking_uri

__all__ = [
    "CARD_HTML",
    "CARD_MD",
    "SECTIONS",
    "CardResult",
    "ModelCard",
    "build_card",
    "card_sections",
    "fetch_model_card",
    "log_model_card",
]

CARD_DIR = "model_card"
CARD_TAG = "model_card"


def build_card(client: Any, name: str, version: str) -> ModelCard:
    """Assemble and render the card of registered model ``name`` version ``version``."""
    src = gather(client, name, str(version))
    context = card_context(src)
    md, html = render(context, src.figures)
    return ModelCard(name, str(version), md, html, src.figures, context)


def log_model_card(client: Any, name: str, version: str) -> ModelCard:
    """Build the card and log it with the model version (LoggedModel + training run + tag;
    the writing is the sink's, ``training.sink.log_card_files``)."""
    card = build_card(client, name, version)
    log_card_files(client, name, version, card.write, CARD_DIR, CARD_TAG, f"{CARD_DIR}/{CARD_MD}")
    return card


# --- retrieval (``crs-risk card``) -----------------------------------------------------------
@dataclass
class CardResult:
    name: str
    version: str
    out: Path
    files: list[Path]
    source: str  # "logged" | "built"
    sections: list[str]

    def render(self) -> str:
        lines = [
            f"model card of {self.name} v{self.version} ({self.source}) written to {self.out}:",
            *(f"  {p.relative_to(self.out)}" for p in self.files if p.suffix != ".png"),
            f"  {FIGURES_DIR}/ ({sum(1 for p in self.files if p.suffix == '.png')} figures)",
        ]
        return "\n".join(lines)


def fetch_model_card(
    model_uri: str,
    *,
    out: Path | None = None,
    tracking_uri: str | None = None,
    rebuild: bool = False,
    log: bool = False,
    default_root: Path | None = None,
) -> CardResult:
    """Retrieve the card logged with ``models:/NAME@ALIAS`` (or ``/VERSION``) into ``out``.

    A version registered before cards existed has none: it is built from its run now (and
    logged with ``log=True``); ``rebuild=True`` always builds from the store.
    """
    uri = resolve_tracking_uri(tracking_uri)
    client = connect(uri)
    mv = resolve_version(client, model_uri)
    name, version = mv.name, str(mv.version)
    root = default_root if default_root is not None else Path("crs-risk-output") / "cards"
    target = Path(out) if out is not None else root / f"{name}-v{version}"
    if target.exists() and not target.is_dir():
        raise CrsRiskError(f"--out {target}: exists and is not a folder")
    source = "built"
    files: list[Path] = []
    if not rebuild and mv.tags.get(CARD_TAG):
        with tempfile.TemporaryDirectory(prefix="crs-risk-card-") as tmp:
            try:
                local = Path(
                    mlflow.artifacts.download_artifacts(
                        artifact_uri=f"models:/{name}/{version}/{CARD_DIR}",
                        dst_path=tmp,
                        tracking_uri=uri,
                    )
                )
            except Exception as exc:  # the tag exists but the files do not: say which
                raise CrsRiskError(
                    f"{name} v{version}: the logged model card could not be read "
                    f"({type(exc).__name__}); rerun with --rebuild"
                ) from None
            (target / FIGURES_DIR).mkdir(parents=True, exist_ok=True)
            for path in sorted(local.rglob("*")):
                if path.is_file():
                    dest = target / path.relative_to(local)
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    dest.write_bytes(path.read_bytes())
                    files.append(dest)
        source = "logged"
    else:
        card = log_model_card(client, name, version) if log else build_card(client, name, version)
        files = card.write(target)
        source = "built and logged" if log else "built now, not logged (use --log)"
    md_path = target / CARD_MD
    sections = card_sections(md_path.read_text(encoding="utf-8")) if md_path.is_file() else []
    return CardResult(name, version, target, files, source, sections)
