"""Inline, server-rendered SVG line charts (no JavaScript, no CDN): TTFT per listing over time."""

from __future__ import annotations

from datetime import datetime

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

PALETTE = ["#1f7a5c", "#c0392b", "#2e6fd8", "#b7791f", "#7b4bb7", "#2c8c99"]
WIDTH, HEIGHT, PAD_L, PAD_R, PAD_T, PAD_B = 640, 220, 48, 12, 12, 28


def ttft_chart(series: dict[str, list[tuple[datetime, float]]]) -> SafeString:
    """One polyline per label; x is time, y is TTFT in ms. Empty input gives an explanatory note."""
    points = [p for values in series.values() for p in values]
    if not points:
        return mark_safe('<p class="muted">No latency samples in the last 24 hours yet.</p>')
    t0 = min(t for t, _ in points).timestamp()
    t1 = max(t for t, _ in points).timestamp()
    span = max(t1 - t0, 1.0)
    top = max(v for _, v in points) * 1.1 or 1.0
    plot_w, plot_h = WIDTH - PAD_L - PAD_R, HEIGHT - PAD_T - PAD_B

    def xy(t: datetime, v: float) -> str:
        x = PAD_L + (t.timestamp() - t0) / span * plot_w
        y = PAD_T + plot_h - (v / top) * plot_h
        return f"{x:.1f},{y:.1f}"

    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="Time to first token per listing, last 24 hours" '
        f'xmlns="http://www.w3.org/2000/svg">',
        f'<line x1="{PAD_L}" y1="{PAD_T + plot_h}" x2="{WIDTH - PAD_R}" y2="{PAD_T + plot_h}" '
        f'stroke="#ccd" />',
        f'<line x1="{PAD_L}" y1="{PAD_T}" x2="{PAD_L}" y2="{PAD_T + plot_h}" stroke="#ccd" />',
        f'<text x="4" y="{PAD_T + 10}" font-size="11" fill="#667">{top:.0f} ms</text>',
        f'<text x="4" y="{PAD_T + plot_h}" font-size="11" fill="#667">0</text>',
    ]
    legend_x = PAD_L
    for i, (label, values) in enumerate(series.items()):
        color = PALETTE[i % len(PALETTE)]
        ordered = sorted(values)
        if len(ordered) == 1:
            x, y = xy(*ordered[0]).split(",")
            parts.append(f'<circle cx="{x}" cy="{y}" r="3" fill="{color}" />')
        elif ordered:
            coords = " ".join(xy(t, v) for t, v in ordered)
            parts.append(
                f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{coords}" />'
            )
        parts.append(
            f'<text x="{legend_x}" y="{HEIGHT - 8}" font-size="11" fill="{color}">'
            f"{escape(label)}</text>"
        )
        legend_x += 12 + 7 * len(label)
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - numbers and escaped labels only
