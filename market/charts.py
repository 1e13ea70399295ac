"""Inline, server-rendered SVG line charts (no JavaScript, no CDN): TTFT and uptime over time.

The x axis is real time, from the first sample (at least CHART_MIN_SPAN before now) to now, with
clock labels, so a few fresh samples are not stretched across the width as if they spanned a day.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

PALETTE = ["#1f7a5c", "#c0392b", "#2e6fd8", "#b7791f", "#7b4bb7", "#2c8c99"]
WIDTH, HEIGHT, PAD_L, PAD_R, PAD_T, PAD_B = 640, 236, 52, 16, 12, 44
CHART_MIN_SPAN = timedelta(minutes=30)

Series = dict[str, list[tuple[datetime, float]]]


def _clock(moment: datetime) -> str:
    return timezone.localtime(moment).strftime("%H:%M")


def line_chart(
    series: Series,
    *,
    aria_label: str,
    empty_note: str,
    y_format: Callable[[float], str],
    y_max: float | None = None,
    now: datetime | None = None,
) -> SafeString:
    """One polyline per label; x is time (first sample .. now), y from 0 to y_max (or the top)."""
    points = [p for values in series.values() for p in values]
    if not points:
        return mark_safe(f'<p class="muted">{escape(empty_note)}</p>')  # noqa: S308 - escaped
    end = now or timezone.now()
    end = max(end, max(t for t, _ in points))
    start = min(min(t for t, _ in points), end - CHART_MIN_SPAN)
    t0, span = start.timestamp(), max((end - start).total_seconds(), 1.0)
    top = y_max if y_max is not None else (max(v for _, v in points) * 1.1 or 1.0)
    plot_w, plot_h = WIDTH - PAD_L - PAD_R, HEIGHT - PAD_T - PAD_B
    base_y = PAD_T + plot_h

    def xy(t: datetime, v: float) -> tuple[float, float]:
        x = PAD_L + (t.timestamp() - t0) / span * plot_w
        y = PAD_T + plot_h - (min(v, top) / top) * plot_h
        return x, y

    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(aria_label)}" xmlns="http://www.w3.org/2000/svg">',
        f'<line x1="{PAD_L}" y1="{base_y}" x2="{WIDTH - PAD_R}" y2="{base_y}" stroke="#ccd" />',
        f'<line x1="{PAD_L}" y1="{PAD_T}" x2="{PAD_L}" y2="{base_y}" stroke="#ccd" />',
        f'<text x="4" y="{PAD_T + 10}" font-size="11" fill="#667">{escape(y_format(top))}</text>',
        f'<text x="4" y="{base_y}" font-size="11" fill="#667">{escape(y_format(0))}</text>',
    ]
    for i, (anchor, share) in enumerate((("start", 0.0), ("middle", 0.5), ("end", 1.0))):
        moment = start + (end - start) * share
        x = PAD_L + share * plot_w
        label = "now" if i == 2 else _clock(moment)
        parts.append(
            f'<text class="tick" x="{x:.1f}" y="{base_y + 14}" font-size="11" fill="#667" '
            f'text-anchor="{anchor}">{label}</text>'
        )
    legend_x = PAD_L
    for i, (label, values) in enumerate(series.items()):
        color = PALETTE[i % len(PALETTE)]
        ordered = sorted(values)
        coords = [xy(t, v) for t, v in ordered]
        if len(coords) > 1:
            joined = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
            parts.append(
                f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{joined}" />'
            )
        for x, y in coords if len(coords) <= 60 else coords[-1:]:
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{color}" />')
        parts.append(
            f'<text x="{legend_x}" y="{HEIGHT - 8}" font-size="11" fill="{color}">'
            f"{escape(label)}</text>"
        )
        legend_x += 12 + 7 * len(label)
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - numbers and escaped labels only


def ttft_chart(series: Series, *, now: datetime | None = None) -> SafeString:
    """Time to first token (ms) per listing over time."""
    return line_chart(
        series,
        aria_label="Time to first token per listing, last 24 hours",
        empty_note="No latency samples in the last 24 hours yet.",
        y_format=lambda v: f"{v:,.0f} ms",
        now=now,
    )


def uptime_chart(series: Series, *, now: datetime | None = None) -> SafeString:
    """Share of successful probes (0..1) per listing and time bucket, drawn as 0..100 %."""
    return line_chart(
        {label: [(t, share * 100) for t, share in values] for label, values in series.items()},
        aria_label="Probe success rate per listing, last 24 hours",
        empty_note="No probes in the last 24 hours yet.",
        y_format=lambda v: f"{v:.0f}%",
        y_max=100.0,
        now=now,
    )
