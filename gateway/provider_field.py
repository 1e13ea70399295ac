"""The body's `provider` object, for clients written for OpenRouter: taken out of the body and parsed.

OpenRouter's provider routing object (`order`, `only`, `ignore`, `allow_fallbacks`, `max_price`,
`sort`, `data_collection`, ...) means here what the routing headers mean (docs/gateway.md, "The
body's provider object"); `routing.preferences` applies it below the headers and above the
profile. It is removed from the body before anything else reads it, so no upstream ever sees it
and it never counts in the prompt's bound. Every field is checked for its JSON type and bounds (a
400 naming `provider.<field>`); OpenRouter's fields that mean nothing in this market are accepted,
type-checked and ignored (IGNORED); any other key is a 400, so a typo never passes silently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from billing.money import MAX_PRICE_PER_MILLION_NUSD, NUSD_PER_USD
from bounded_numbers import parse as bounded
from gateway.errors import bad_request

MAX_PROVIDERS = 64  # slugs in one list (the catalogue has a handful of providers)
MAX_SLUG_CHARS = 64
SORTS = ("price", "latency", "throughput")
_SLUG = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")

# OpenRouter's fields with no meaning here: the type each must have, then ignored.
# require_parameters: every listing of a model takes the same parameters (one wire format);
# quantizations, enforce_distillable_text: the catalogue does not record them;
# zdr: no listing promises zero data retention (data_collection "deny" keeps trusted sellers).
IGNORED = {
    "require_parameters": "a boolean",
    "zdr": "a boolean",
    "enforce_distillable_text": "a boolean",
    "quantizations": "an array of strings",
}
KNOWN = (
    "order",
    "only",
    "ignore",
    "allow_fallbacks",
    "max_price",
    "sort",
    "data_collection",
    "preferred_min_throughput",
    "preferred_max_latency",
)
PERCENTILES = ("p50", "p75", "p90", "p99")  # OpenRouter's cutoffs; listings are measured at p50


@dataclass(frozen=True, slots=True)
class ProviderField:
    """What the body asked for; None (or empty) where it said nothing."""

    order: tuple[str, ...] = ()
    only: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    allow_fallbacks: bool = True
    max_input_price_nusd: int | None = None
    max_output_price_nusd: int | None = None
    sort: str | None = None
    trusted_only: bool = False  # data_collection "deny"
    soft_min_tps: float | None = None  # preferred_min_throughput (tokens per second)
    soft_max_ttft_ms: float | None = None  # preferred_max_latency (seconds, here in ms)


def take(data: dict) -> ProviderField | None:
    """Remove `provider` from the body's JSON object and parse it (None when absent or null)."""
    if "provider" not in data:
        return None
    value = data.pop("provider")
    if value is None:
        return None
    return parse(value)


def parse(value: object) -> ProviderField:
    if not isinstance(value, dict):
        raise bad_request("'provider' must be an object (OpenRouter's provider routing).")
    for name in value:
        if name not in KNOWN and name not in IGNORED:
            accepted = ", ".join((*KNOWN, *IGNORED))
            raise bad_request(f"'provider.{name[:40]}' is not a field of 'provider' ({accepted}).")
    for name, what in IGNORED.items():
        _ignored(value, name, what)
    return ProviderField(
        order=_slugs(value, "order"),
        only=_slugs(value, "only"),
        ignore=_slugs(value, "ignore"),
        allow_fallbacks=_boolean(value, "allow_fallbacks", default=True),
        **_max_price(value.get("max_price")),
        sort=_sort(value.get("sort")),
        trusted_only=_data_collection(value.get("data_collection")),
        soft_min_tps=_preferred(value, "preferred_min_throughput", bounded.TPS_MAX),
        soft_max_ttft_ms=_seconds_to_ms(
            _preferred(value, "preferred_max_latency", bounded.TTFT_MS_MAX // 1000)
        ),
    )


def _slugs(value: dict, name: str) -> tuple[str, ...]:
    items = value.get(name)
    if items is None:
        return ()
    what = f"'provider.{name}' must be an array of at most {MAX_PROVIDERS} provider slugs"
    if not isinstance(items, list) or len(items) > MAX_PROVIDERS:
        raise bad_request(f'{what}, like ["deepseek", "minimax"].')
    slugs = []
    for index, item in enumerate(items):
        slug = item.strip().lower() if isinstance(item, str) else None
        if not slug or len(slug) > MAX_SLUG_CHARS or not _SLUG.match(slug):
            raise bad_request(f"'provider.{name}[{index}]' is not a provider slug: {what}.")
        slugs.append(slug)
    return tuple(slugs)


def _boolean(value: dict, name: str, *, default: bool) -> bool:
    item = value.get(name)
    if item is None:
        return default
    if not isinstance(item, bool):
        raise bad_request(f"'provider.{name}' must be true or false.")
    return item


def _price(value: object, name: str) -> int:
    """USD per million tokens (a JSON number, or its text) → nano-USD, bounded like X-Max-Price."""
    where = f"'provider.max_price.{name}'"
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise bad_request(f"{where} must be a number: USD per million tokens, e.g. 0.5.")
    text = value if isinstance(value, str) else repr(value)
    high = MAX_PRICE_PER_MILLION_NUSD // NUSD_PER_USD
    try:
        return bounded.fixed_text(text, what=where, low=0, high=high, places=9)
    except bounded.NumberError as exc:
        raise bad_request(f"{exc.message} It is USD per million tokens, e.g. 0.5.") from None


def _max_price(value: object) -> dict[str, int | None]:
    if value is None:
        return {"max_input_price_nusd": None, "max_output_price_nusd": None}
    if not isinstance(value, dict):
        raise bad_request(
            '\'provider.max_price\' must be an object like {"prompt": 0.5, "completion": 2}.'
        )
    prices: dict[str, int | None] = {}
    for name, field in (
        ("prompt", "max_input_price_nusd"),
        ("completion", "max_output_price_nusd"),
    ):
        prices[field] = None if value.get(name) is None else _price(value[name], name)
    for name, item in value.items():
        if name in ("prompt", "completion"):
            continue
        if name not in ("request", "image", "audio"):
            raise bad_request(
                f"'provider.max_price.{name[:40]}' is not a price: use prompt and completion "
                "(request, image and audio are accepted and ignored)."
            )
        if item is not None:
            _price(item, name)  # no listing here charges per request, image or audio
    return prices


def _sort(value: object) -> str | None:
    if isinstance(value, dict):  # OpenRouter's {"by": ..., "partition": ...}
        partition = value.get("partition")
        if partition is not None and not isinstance(partition, str):
            raise bad_request("'provider.sort.partition' must be a string.")
        value = value.get("by")
    if value is None:
        return None
    if not isinstance(value, str) or value not in SORTS:
        raise bad_request(f"'provider.sort' must be one of {', '.join(SORTS)}.")
    return value


def _preferred(value: dict, name: str, high: int) -> float | None:
    """A soft preference: a number, or OpenRouter's percentile object, of which p50 is used (the
    listings' measure; the other cutoffs are type-checked and ignored)."""
    item = value.get(name)
    where = f"'provider.{name}'"
    if isinstance(item, dict):
        for key in item:
            if key not in PERCENTILES:
                raise bad_request(f"{where} takes the percentiles {', '.join(PERCENTILES)}.")
        numbers = {key: _number(item[key], f"{where[:-1]}.{key}'", high) for key in item}
        return numbers.get("p50")
    return _number(item, where, high)


def _number(item: object, where: str, high: int) -> float | None:
    if item is None:
        return None
    if isinstance(item, bool) or not isinstance(item, (int, float)):
        raise bad_request(f"{where} must be a number from 0 to {high:,}.")
    try:
        return bounded.float_text(repr(item), what=where, low=0, high=high)
    except bounded.NumberError as exc:
        raise bad_request(f"{exc.message} It is a number from 0 to {high:,}.") from None


def _seconds_to_ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def _data_collection(value: object) -> bool:
    """'deny': trusted sellers only. 'allow' (OpenRouter's default) adds no constraint: it leaves
    the profile's privacy mode as it is (only the header can loosen that)."""
    if value is None:
        return False
    if value not in ("allow", "deny"):
        raise bad_request("'provider.data_collection' must be 'allow' or 'deny'.")
    return value == "deny"


def _ignored(value: dict, name: str, what: str) -> None:
    item = value.get(name)
    if item is None:
        return
    if what == "a boolean":
        ok = isinstance(item, bool)
    else:  # an array of strings
        ok = (
            isinstance(item, list)
            and len(item) <= MAX_PROVIDERS
            and all(isinstance(x, str) and len(x) <= MAX_SLUG_CHARS for x in item)
        )
    if not ok:
        raise bad_request(f"'provider.{name}' must be {what} (accepted and ignored here).")
