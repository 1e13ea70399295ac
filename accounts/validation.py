"""Input parsing shared by the dashboard forms and the management API: each raises ValidationError."""

from __future__ import annotations

import re
from decimal import Decimal

from django.core.exceptions import ValidationError

from bounded_numbers import parse as bounded

_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]*$")

# Upper bounds for whole-number fields: far above any real use, and inside the database columns
# (a bigger number would otherwise reach PostgreSQL and fail as a 500).
# The routing headers share the TTFT and throughput bounds (bounded_numbers/parse.py).
MAX_THROTTLE_PER_MINUTE = 1_000_000_000  # requests or tokens per minute on a key
MAX_TTFT_MS = bounded.TTFT_MS_MAX  # ten minutes, the longest an upstream call may take
MAX_TPS = bounded.TPS_MAX  # tokens per second


def usd_to_nusd_field(
    value: str | Decimal | None, *, what: str, max_nusd: int | None = None
) -> int | None:
    """A dollar amount typed by a person (per million tokens, or a spend limit) → nano-USD.

    Parsed by billing.money.usd_to_nusd, which refuses by length and magnitude before converting
    (bounded_numbers/parse.py); `max_nusd` narrows its $1e9 ceiling (prices: the header's own bound).
    """
    from billing.money import format_usd, usd_to_nusd

    if value is None or str(value).strip() == "":
        return None
    try:
        nusd = usd_to_nusd(value.strip() if isinstance(value, str) else value)
    except ValueError as exc:
        raise ValidationError(f"{what}: {exc}") from None
    if max_nusd is not None and nusd > max_nusd:
        raise ValidationError(f"{what}: at most {format_usd(max_nusd)}.")
    return nusd


def provider_slugs_parse(value: str | list | None) -> list[str]:
    """Comma-separated (or listed) provider slugs, each one the market knows; order kept, no repeats."""
    from market.models import Provider

    if value is None:
        return []
    if isinstance(value, str):
        items = [part.strip().lower() for part in value.split(",")]
    elif isinstance(value, list) and all(isinstance(part, str) for part in value):
        items = [part.strip().lower() for part in value]
    else:
        raise ValidationError("Give provider slugs as comma-separated text or a list of strings.")
    slugs = [item for item in items if item]
    bad = [slug for slug in slugs if not _SLUG.match(slug)]
    if bad:
        raise ValidationError(f"Not a provider slug: {', '.join(bad)}.")
    known = set(Provider.objects.filter(slug__in=slugs).values_list("slug", flat=True))
    unknown = [slug for slug in slugs if slug not in known]
    if unknown:
        raise ValidationError(f"Unknown provider: {', '.join(unknown)}.")
    if len(set(slugs)) != len(slugs):
        raise ValidationError("Each provider may appear once.")
    return slugs


def catalogue_model_ids() -> set[str]:
    from market import selectors as market_selectors

    return {str(item["model_id"]) for item in market_selectors.catalogue_list()}


def model_id_check(value: str, *, known: set[str] | None = None) -> str:
    value = value.strip()
    if not value:
        return ""
    known = catalogue_model_ids() if known is None else known
    if value not in known:
        raise ValidationError(f"{value} is not a model in the catalogue.")
    return value


def aliases_parse(value: str | dict | None) -> dict[str, str]:
    """`requested name = catalogue model id`, one per line (or a JSON object from the API)."""
    if value is None or value == "":
        return {}
    pairs: list[tuple[str, str]] = []
    if isinstance(value, dict):
        for name, target in value.items():
            if not isinstance(name, str) or not isinstance(target, str):
                raise ValidationError("Aliases map names (text) to model ids (text).")
            pairs.append((name.strip(), target.strip()))
    elif isinstance(value, str):
        for number, line in enumerate(value.splitlines(), start=1):
            if not line.strip():
                continue
            name, sep, target = line.partition("=")
            if not sep:
                raise ValidationError(f"Line {number}: write it as `name = model id`.")
            pairs.append((name.strip(), target.strip()))
    else:
        raise ValidationError("Aliases map names to model ids.")
    known = catalogue_model_ids()
    aliases: dict[str, str] = {}
    for name, target in pairs:
        if not name or not target:
            raise ValidationError("Each alias needs a name and a model id.")
        if len(name) > 100:
            raise ValidationError(f"Alias name too long: {name[:20]}…")
        if name in aliases:
            raise ValidationError(f"{name} appears twice.")
        aliases[name] = model_id_check(target, known=known)
    return aliases


def aliases_format(aliases: dict[str, str]) -> str:
    return "\n".join(f"{name} = {target}" for name, target in aliases.items())
