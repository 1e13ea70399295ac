"""Template filters of the market pages: percentages, milliseconds, throughput (money: `money`)."""

from django import template

register = template.Library()


@register.filter
def percent(share: float | None) -> str:
    return "-" if share is None else f"{share * 100:.1f}%"


@register.filter
def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} ms"


@register.filter
def tps(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f} tok/s"
