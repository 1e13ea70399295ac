import pytest
from django.template import Context, Template

from billing.money import format_usd


@pytest.mark.parametrize(
    ("amount_nusd", "shown"),
    [
        (0, "$0.00"),
        (1_000_000_000, "$1.00"),
        (1_500_000_000, "$1.50"),
        (999_910_000, "$0.99991"),
        (30_000, "$0.00003"),
        (-30_000, "-$0.00003"),
        (1_234_567_890_123, "$1,234.567890123"),
    ],
)
def test_amounts_are_shown_exactly(amount_nusd, shown):
    assert format_usd(amount_nusd) == shown


def test_rounding_is_only_on_request():
    assert format_usd(999_910_000, places=2) == "$1.00"


def test_the_template_filter_is_exact_and_dashes_missing_amounts():
    template = Template(
        "{% load money %}{{ a|usd }} {{ b|usd }} {{ c|per_million }} {{ d|per_million }}"
    )
    rendered = template.render(Context({"a": 999_910_000, "b": None, "c": 400_000_000, "d": None}))
    assert rendered == "$0.99991 — $0.40/M any"
