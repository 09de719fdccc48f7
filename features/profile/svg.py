"""Tiny inline SVG charts (histograms, stacked bars): no network, no JavaScript, no matplotlib,
so a report of 10⁵ patients renders in milliseconds and opens offline."""

from __future__ import annotations

from html import escape

import numpy as np

PALETTE = ("#cfd8dc", "#ffe082", "#ffb74d", "#e57373", "#ba68c8", "#37474f", "#90a4ae")


def histogram(
    counts: np.ndarray,
    edges: np.ndarray,
    *,
    log_scale: bool,
    title: str,
    width: int = 260,
    height: int = 90,
) -> str:
    """Bars of ``counts`` over ``edges`` (log10 units when ``log_scale``) with axis end labels."""
    top = max(int(counts.max()) if len(counts) else 0, 1)
    n = len(counts)
    bw = width / max(n, 1)
    bars = "".join(
        f'<rect x="{i * bw:.1f}" y="{height - 14 - (c / top) * (height - 20):.1f}" '
        f'width="{max(bw - 1, 0.5):.1f}" height="{(c / top) * (height - 20):.1f}" fill="#5c6bc0">'
        f"<title>{int(c)}</title></rect>"
        for i, c in enumerate(counts)
    )

    def lab(v: float) -> str:
        return f"{10**v:.3g}" if log_scale else f"{v:.3g}"

    axis = (
        f'<text x="0" y="{height - 2}" font-size="9">{escape(lab(edges[0]))}</text>'
        f'<text x="{width}" y="{height - 2}" font-size="9" text-anchor="end">'
        f"{escape(lab(edges[-1]))}{' (log)' if log_scale else ''}</text>"
    )
    return (
        f'<svg class="hist" role="img" aria-label="{escape(title)}" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(title)}</title>{bars}{axis}</svg>"
    )


def stacked_bars(
    rows: np.ndarray,
    labels: list[str],
    legend: list[str],
    *,
    title: str,
    width: int = 640,
    height: int = 180,
) -> str:
    """One stacked bar per row of ``rows`` (categories = columns), scaled to the largest total."""
    if not rows.size or not rows.sum():
        return f'<p class="empty">{escape(title)}: nothing timed to plot.</p>'
    totals = rows.sum(axis=1) if rows.size else np.zeros(0)
    top = max(float(totals.max()) if len(totals) else 0.0, 1.0)
    n = len(rows)
    plot_h = height - 40
    bw = width / max(n, 1)
    parts = []
    for i, row in enumerate(rows):
        y = plot_h
        for j, c in enumerate(row):
            h = c / top * plot_h
            if h <= 0:
                continue
            y -= h
            parts.append(
                f'<rect x="{i * bw + 1:.1f}" y="{y:.1f}" width="{max(bw - 2, 1):.1f}" '
                f'height="{h:.1f}" fill="{PALETTE[j % len(PALETTE)]}">'
                f"<title>{escape(labels[i])}: {escape(legend[j])} {int(c)}</title></rect>"
            )
        parts.append(
            f'<text x="{i * bw + bw / 2:.1f}" y="{plot_h + 12}" font-size="9" '
            f'text-anchor="middle">{escape(labels[i])}</text>'
        )
    keys = "".join(
        f'<rect x="{k * 90}" y="{height - 14}" width="10" height="10" '
        f'fill="{PALETTE[k % len(PALETTE)]}"/><text x="{k * 90 + 14}" y="{height - 5}" '
        f'font-size="10">{escape(name)}</text>'
        for k, name in enumerate(legend)
    )
    return (
        f'<svg class="bars" role="img" aria-label="{escape(title)}" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(title)}</title>{''.join(parts)}{keys}</svg>"
    )
