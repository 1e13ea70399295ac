import re
from datetime import date

from billing.charts import HEIGHT, PAD, bar_chart_svg, count_label


def _heights(svg: str) -> list[float]:
    return [float(h) for h in re.findall(r'<rect [^>]*height="([0-9.]+)"', svg)]


def test_bars_scale_to_the_largest_day():
    svg = bar_chart_svg(
        series=[(date(2026, 1, 1), 0), (date(2026, 1, 2), 50), (date(2026, 1, 3), 100)],
        title="Daily spend",
    )
    usable = HEIGHT - 2 * PAD
    assert _heights(svg) == [0.0, usable / 2, usable]


def test_tooltips_and_the_peak_show_exact_sub_cent_amounts():
    svg = bar_chart_svg(series=[(date(2026, 1, 1), 30_000), (date(2026, 1, 2), 90_000)], title="t")
    assert "Jan 02: $0.00009" in svg
    assert "max $0.00009" in svg


def test_count_charts_label_plain_numbers():
    svg = bar_chart_svg(
        series=[(date(2026, 1, 1), 3), (date(2026, 1, 2), 1200)], title="t", label=count_label
    )
    assert "Jan 01: 3</title>" in svg
    assert "max 1,200" in svg
