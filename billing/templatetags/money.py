"""Money in templates, one way everywhere: `{{ x|usd }}` shows nano-USD exactly as dollars."""

from django import template

from billing.money import format_usd

register = template.Library()


@register.filter
def usd(amount_nusd: int | None) -> str:
    """Exact dollars (`$0.99991`, `$1.00`); a dash when there is no amount."""
    return "—" if amount_nusd is None else format_usd(int(amount_nusd))


@register.filter
def per_million(amount_nusd: int | None) -> str:
    """A per-million price (`$0.40/M`); `any` when no limit is set."""
    return "any" if amount_nusd is None else f"{format_usd(int(amount_nusd))}/M"


@register.filter
def bps_percent(bps: int) -> str:
    """Basis points as a percentage (`1000` → `10%`, `125` → `1.25%`)."""
    return f"{int(bps) / 100:g}%"
