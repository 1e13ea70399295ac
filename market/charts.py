"""Inline, server-rendered SVG charts (no JavaScript, no CDN): TTFT and uptime over time, and
stacked bars (why traffic moved).

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
    legend_x, legend_y = PAD_L, HEIGHT - 8
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
        width = 12 + 7 * len(label)
        if legend_x > PAD_L and legend_x + width > WIDTH - PAD_R:
            legend_x, legend_y = PAD_L, legend_y + 16  # wrap the legend onto another row
        parts.append(
            f'<text x="{legend_x}" y="{legend_y}" font-size="11" fill="{color}">'
            f"{escape(label)}</text>"
        )
        legend_x += width
    parts[0] = parts[0].replace(f"0 0 {WIDTH} {HEIGHT}", f"0 0 {WIDTH} {legend_y + 8}")
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


def _uptime_color(share: float) -> str:
    if share >= 0.99:
        return "#1f7a5c"
    if share >= 0.9:
        return "#b7791f"
    return "#c0392b"


def uptime_chart(series: Series, *, bucket: timedelta, now: datetime | None = None) -> SafeString:
    """One lane per listing, one cell per time bucket coloured by its share of successful probes
    (green at least 99 %, amber at least 90 %, red below); lines would hide each other at 100 %."""
    points = [p for values in series.values() for p in values]
    if not points:
        return mark_safe('<p class="muted">No probes in the last 24 hours yet.</p>')
    end = max(now or timezone.now(), max(t for t, _ in points))
    start = min(min(t for t, _ in points) - bucket / 2, end - CHART_MIN_SPAN)
    t0, span = start.timestamp(), max((end - start).total_seconds(), 1.0)
    label_w, lane_h, gap, top = 170, 18, 8, 8
    plot_w = WIDTH - label_w - PAD_R
    cell_w = max(bucket.total_seconds() / span * plot_w - 1, 2.0)
    height = top + len(series) * (lane_h + gap) + 24
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-label="Probe success rate per listing, last 24 hours" '
        f'xmlns="http://www.w3.org/2000/svg">'
    ]
    for row, (label, values) in enumerate(series.items()):
        y = top + row * (lane_h + gap)
        short = label if len(label) <= 24 else label[:23] + "…"
        parts.append(
            f'<text x="4" y="{y + lane_h - 5}" font-size="11" fill="#445">{escape(short)}</text>'
            f'<rect x="{label_w}" y="{y}" width="{plot_w}" height="{lane_h}" fill="#eef0f4" />'
        )
        for moment, share in values:
            x = max(label_w + ((moment - bucket / 2).timestamp() - t0) / span * plot_w, label_w)
            w = max(min(cell_w, label_w + plot_w - x), 2.0)  # the running bucket ends at now
            parts.append(
                f'<rect class="cell" x="{x:.1f}" y="{y}" width="{w:.1f}" '
                f'height="{lane_h}" fill="{_uptime_color(share)}">'
                f"<title>{escape(_clock(moment))}: {share * 100:.0f}%</title></rect>"
            )
    base = top + len(series) * (lane_h + gap) + 12
    for anchor, share in (("start", 0.0), ("middle", 0.5), ("end", 1.0)):
        label = "now" if share == 1.0 else _clock(start + (end - start) * share)
        parts.append(
            f'<text class="tick" x="{label_w + share * plot_w:.1f}" y="{base}" font-size="11" '
            f'fill="#667" text-anchor="{anchor}">{label}</text>'
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - numbers and escaped labels only


def stacked_bars(
    bars: list[tuple[datetime, dict[str, int]]],
    groups: dict[str, tuple[str, str]],
    *,
    bucket: timedelta,
    aria_label: str,
    empty_note: str,
) -> SafeString:
    """One bar per time bucket (its start), stacked by group in `groups`' order (group -> (label,
    colour)); each segment's tooltip says its count. The legend lists only the groups shown."""
    if not any(counts for _, counts in bars):
        return mark_safe(f'<p class="muted">{escape(empty_note)}</p>')  # noqa: S308 - escaped
    top = max(sum(counts.values()) for _, counts in bars)
    plot_w, plot_h = WIDTH - PAD_L - PAD_R, HEIGHT - PAD_T - PAD_B
    base_y = PAD_T + plot_h
    slot = plot_w / len(bars)
    bar_w = max(slot - 2, 1.0)
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(aria_label)}" xmlns="http://www.w3.org/2000/svg">',
        f'<line x1="{PAD_L}" y1="{base_y}" x2="{WIDTH - PAD_R}" y2="{base_y}" stroke="#ccd" />',
        f'<text x="4" y="{PAD_T + 10}" font-size="11" fill="#667">{top:,}</text>',
        f'<text x="4" y="{base_y}" font-size="11" fill="#667">0</text>',
    ]
    clock = "%m-%d %H:%M" if bucket >= timedelta(hours=6) else "%H:%M"
    for i, (start, counts) in enumerate(bars):
        x, y = PAD_L + i * slot + 1, float(base_y)
        when = timezone.localtime(start).strftime(clock)
        for group, (label, color) in groups.items():
            n = counts.get(group, 0)
            if not n:
                continue
            h = n / top * plot_h
            y -= h
            parts.append(
                f'<rect class="segment" data-group="{group}" x="{x:.1f}" y="{y:.1f}" '
                f'width="{bar_w:.1f}" height="{h:.1f}" fill="{color}">'
                f"<title>{when}: {escape(label)}, {n:,}</title></rect>"
            )
    for anchor, index in (("start", 0), ("end", len(bars) - 1)):
        x = PAD_L if anchor == "start" else WIDTH - PAD_R
        label = timezone.localtime(bars[index][0]).strftime(clock)
        parts.append(
            f'<text class="tick" x="{x}" y="{base_y + 14}" font-size="11" fill="#667" '
            f'text-anchor="{anchor}">{label}</text>'
        )
    shown = {g for _, counts in bars for g, n in counts.items() if n}
    legend_x, legend_y = PAD_L, HEIGHT - 8
    for group, (label, color) in groups.items():
        if group not in shown:
            continue
        width = 28 + 7 * len(label)
        if legend_x > PAD_L and legend_x + width > WIDTH - PAD_R:
            legend_x, legend_y = PAD_L, legend_y + 16
        parts.append(
            f'<rect x="{legend_x}" y="{legend_y - 9}" width="10" height="10" fill="{color}" />'
            f'<text x="{legend_x + 14}" y="{legend_y}" font-size="11" fill="#445">'
            f"{escape(label)}</text>"
        )
        legend_x += width
    parts[0] = parts[0].replace(f"0 0 {WIDTH} {HEIGHT}", f"0 0 {WIDTH} {legend_y + 8}")
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - numbers and escaped labels only
