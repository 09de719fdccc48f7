"""Model card, step 3: render a card context as Markdown and self-contained HTML (Jinja2).

Templates in ``training/templates`` (``model_card.md.j2``, ``model_card.html.j2``); the HTML
embeds its figures as data URIs so it opens offline. Nothing is read or computed here.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2

CARD_MD = "model_card.md"
CARD_HTML = "model_card.html"
FIGURES_DIR = "figures"
TEMPLATES = Path(__file__).resolve().parent / "templates"

# (heading, anchor) of every section, in order — the test parses the card for these.
SECTIONS: tuple[tuple[str, str], ...] = (
    ("Model details", "model-details"),
    ("Intended use and users", "intended-use"),
    ("Task, landmark, eligibility and outcome", "task"),
    ("Training cohort", "training-cohort"),
    ("Data quality", "data-quality"),
    ("Validation method", "validation"),
    ("Performance", "performance"),
    ("Calibration and decision curve", "calibration"),
    ("Top variables", "top-variables"),
    ("Comparison with published baselines", "baselines"),
    ("Limitations", "limitations"),
    ("TRIPOD+AI checklist", "tripod"),
)


def md_cell(value: Any) -> str:
    """A Markdown table cell (pipes escaped, no newlines)."""
    return str(value).replace("|", "\\|").replace("\n", " ")


@dataclass
class ModelCard:
    """A rendered card and the figures it embeds."""

    name: str
    version: str
    markdown: str
    html: str
    figures: dict[str, bytes] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)

    def write(self, out: Path) -> list[Path]:
        """Write ``model_card.md``, ``model_card.html`` and ``figures/*.png`` into ``out``."""
        out = Path(out)
        (out / FIGURES_DIR).mkdir(parents=True, exist_ok=True)
        paths = [out / CARD_MD, out / CARD_HTML]
        paths[0].write_text(self.markdown, encoding="utf-8")
        paths[1].write_text(self.html, encoding="utf-8")
        for key, data in self.figures.items():
            path = out / FIGURES_DIR / f"{key}.png"
            path.write_bytes(data)
            paths.append(path)
        return paths


# --- rendering -------------------------------------------------------------------------------
def _environment() -> Any:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "html.j2")),
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["cell"] = md_cell
    env.filters["plain"] = lambda text: str(text).replace("**", "").replace("`", "")
    return env


def render(context: Mapping[str, Any], figures: Mapping[str, bytes]) -> tuple[str, str]:
    """(Markdown, self-contained HTML) of a card context."""
    env = _environment()
    sections = [{"title": t, "anchor": a} for t, a in SECTIONS]
    titles = dict(SECTIONS)
    by_anchor = {a: t for t, a in SECTIONS}
    md = env.get_template("model_card.md.j2").render(
        **context,
        sections=sections,
        titles=titles,
        by_anchor=by_anchor,
        figure_dir=FIGURES_DIR,
    )
    data_uris = {
        k: "data:image/png;base64," + base64.b64encode(v).decode("ascii")
        for k, v in figures.items()
    }
    html = env.get_template("model_card.html.j2").render(
        **context, sections=sections, titles=titles, by_anchor=by_anchor, images=data_uris
    )
    return md, html


def card_sections(markdown: str) -> list[str]:
    """Second-level headings of a card's Markdown, in order."""
    return [m.group(1).strip() for m in re.finditer(r"^## (.+)$", markdown, flags=re.M)]
