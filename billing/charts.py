"""Daily bar charts rendered server-side as inline SVG (no JavaScript, no CDN)."""

from collections.abc import Callable
from datetime import date

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from billing.money import format_usd

WIDTH, HEIGHT, PAD = 600, 160, 24


def count_label(value: int) -> str:
    return f"{value:,}"


def bar_chart_svg(
    *, series: list[tuple[date, int]], title: str, label: Callable[[int], str] = format_usd
) -> SafeString:
    """One bar per day; the tallest day fills the height. Each bar has a tooltip with its value,
    shown by `label` (dollars by default, `count_label` for plain counts)."""
    peak = max((v for _, v in series), default=0) or 1
    n = max(len(series), 1)
    slot = (WIDTH - 2 * PAD) / n
    bars = []
    for i, (day, value) in enumerate(series):
        h = 0 if value <= 0 else max(1.0, (HEIGHT - 2 * PAD) * value / peak)
        x = PAD + i * slot
        y = HEIGHT - PAD - h
        tip = escape(f"{day:%b %d}: {label(value)}")
        bars.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(slot - 2, 1):.1f}" height="{h:.1f}" '
            f'class="bar"><title>{tip}</title></rect>'
        )
    first = escape(f"{series[0][0]:%b %d}") if series else ""
    last = escape(f"{series[-1][0]:%b %d}") if series else ""
    peak_label = escape(label(peak if any(v for _, v in series) else 0))
    return mark_safe(  # noqa: S308 - every interpolated value is escaped or numeric
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}">'
        f"<title>{escape(title)}</title>"
        f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" class="axis"/>'
        f'<text x="{PAD}" y="{PAD - 8}" class="label">max {peak_label}</text>'
        f'<text x="{PAD}" y="{HEIGHT - 6}" class="label">{first}</text>'
        f'<text x="{WIDTH - PAD}" y="{HEIGHT - 6}" class="label" text-anchor="end">{last}</text>'
        + "".join(bars)
        + "</svg>"
    )
