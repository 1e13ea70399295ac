"""Choosing listings: the in-process routing table, the buyer's constraints, ranking and stickiness.

The table (market.selectors.routing_table + catalogue_list + fee profiles) is loaded once and then
refreshed in the background every DRAGONFLY_ROUTING_REFRESH_SECONDS; requests never query it.
Precedence for every constraint: request header > the key's routing profile > platform default
(no constraint). Hard constraints remove listings; soft ones only reorder; price is the base order.
When none is left, the 503 counts every listing offering the model under the first reason
(REASONS) that removed it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from billing.money import MAX_PRICE_PER_MILLION_NUSD, NUSD_PER_USD
from bounded_numbers import parse as bounded
from gateway import dead_keys, kv, max_cost, model_aliases, price_lock, runtime
from gateway.db import db_call
from gateway.errors import NO_ELIGIBLE_SELLER, GatewayError, bad_request
from gateway.provider_field import ProviderField
from gateway.runtime import caches
from market.route_candidates import RouteCandidate

logger = logging.getLogger("gateway")

STICKY_IDLE_SECONDS = 30 * 60
UNHEALTHY = frozenset({"cooling_down", "suspended"})
_SLUG = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
_SESSION_ID = re.compile(r"^[\x21-\x7e]{1,200}$")


# ---------------------------------------------------------------- the table


@dataclass(frozen=True, slots=True)
class Table:
    candidates: dict[str, list[Any]]  # model id -> RouteCandidate, cheapest first
    catalogue: dict[str, dict]  # model id -> catalogue_list() entry
    fees: dict[int, tuple[int, int]]  # seller id -> (fee profile id, fee bps)
    loaded_at: float  # when the load began: the table is at least that fresh
    # model id -> {"suspended": n, "paused": n}: listings offering it that are out of the market
    # (market.selectors.routing_offline_counts); only a 503 reads them.
    offline: dict[str, dict[str, int]] = field(default_factory=dict)


# The table is process state (caches.routing_table, shared by every loop), as is
# caches.routing_stale_retry_at: after a failed forced reload, requests serve the stale table until
# then. Each loop's refresher is its runtime's "routing" service; its routing_lock lets one
# forced load run at a time.
_STALE_RETRY_SECONDS = 1.0


# A table load that waits this long for a lock gives up (the previous table serves on, and the
# next refresh tries again): shorter than PostgreSQL's deadlock_timeout (1 s), so when a load's
# reads meet a TRUNCATE or a migration's lock in the other order, the load is the one that
# yields, not the operator's statement.
LOCK_TIMEOUT_MS = 200


def _load() -> Table:
    from django.db import connection, transaction

    from billing.selectors import fee_profile_for_seller
    from market.selectors import catalogue_list, routing_offline_counts, routing_table

    started = time.monotonic()
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(f"SET LOCAL lock_timeout = {LOCK_TIMEOUT_MS}")
        candidates = routing_table()
        catalogue = {entry["model_id"]: entry for entry in catalogue_list()}
        sellers = {c.seller_id for rows in candidates.values() for c in rows}
        fees = {seller_id: fee_profile_for_seller(seller_id=seller_id) for seller_id in sellers}
        offline = routing_offline_counts()
    return Table(candidates, catalogue, fees, started, offline=offline)


async def _refresh_forever() -> None:
    while True:
        await asyncio.sleep(settings.DRAGONFLY_ROUTING_REFRESH_SECONDS)
        try:
            caches.routing_table = await db_call(_load, idempotent=True)
        except Exception:
            logger.exception("routing table refresh failed; serving the previous table")


def _load_due() -> bool:
    """No table yet, or one too stale to trust while a forced reload may be tried."""
    table = caches.routing_table
    if table is None:
        return True
    stale_after = max(3 * settings.DRAGONFLY_ROUTING_REFRESH_SECONDS, 10)
    now = time.monotonic()
    return now - table.loaded_at > stale_after and now >= caches.routing_stale_retry_at


async def table() -> Table:
    """The current table; loads it on first use and keeps one refresher per event loop."""
    state = runtime.current()
    state.service("routing", _refresh_forever)
    if _load_due():
        async with state.routing_lock:
            if _load_due():
                try:
                    caches.routing_table = await db_call(_load, idempotent=True)
                except Exception:
                    stale = caches.routing_table
                    if stale is None:
                        raise  # nothing to serve yet (DatabaseUnavailable: a 503)
                    # Serve stale rather than fail: the last good table still routes. Requests try
                    # the load again a second later (one at a time), the refresher on its period.
                    caches.routing_stale_retry_at = time.monotonic() + _STALE_RETRY_SECONDS
                    logger.exception(
                        "routing table reload failed; serving the table of %.0f s ago",
                        time.monotonic() - stale.loaded_at,
                    )
    table = caches.routing_table
    assert table is not None  # loaded above, or the load raised
    return table


async def reload() -> Table:
    """Load now (tests, and the first request after a change an operator is waiting for)."""
    table = caches.routing_table = await db_call(_load, idempotent=True)
    return table


# ---------------------------------------------------------------- models


def resolve_model(
    requested: str, profile: dict | None, catalogue: dict[str, dict], *, modality: str = "chat"
) -> tuple[dict, str | None]:
    """The catalogue entry for a requested name, and how it was found: None for a catalogue id,
    else the step that mapped it. In order: the profile's own aliases and then its default model
    (when the profile turns aliases on; its default only for models of `modality`, the
    endpoint's), then, unless the profile is strict, the built-in aliases (model_aliases.py) and
    the platform default of `modality`. Nothing found: 400."""
    p = profile or {}
    if p.get("aliases_enabled"):
        name = (p.get("model_aliases") or {}).get(requested)
        if name in catalogue:
            return catalogue[name], None if name == requested else "profile_alias"
    if requested in catalogue:
        return catalogue[requested], None
    if p.get("aliases_enabled"):
        entry = catalogue.get(p.get("default_model") or "")
        if entry is not None and entry.get("modality", modality) == modality:
            return entry, "profile_default"
    if not p.get("strict_models"):
        name = model_aliases.target(requested, catalogue)
        if name is not None:
            return catalogue[name], "builtin_alias"
        entry = model_aliases.platform_default(catalogue, modality)
        if entry is not None:
            return entry, "platform_default"
    raise bad_request(
        f"Unknown model '{requested}'. GET /v1/models lists the models you can use; the "
        f"Quick start shows one that is live now: {settings.DRAGONFLY_BASE_URL}/dashboard/quickstart/"
    )


# ---------------------------------------------------------------- constraints


@dataclass(frozen=True, slots=True)
class Preferences:
    max_input_price_nusd: int | None = None
    max_output_price_nusd: int | None = None
    soft_max_ttft_ms: float | None = None
    hard_max_ttft_ms: float | None = None
    soft_min_tps: float | None = None
    hard_min_tps: float | None = None
    trusted_only: bool = False
    provider_only: tuple[str, ...] = ()
    provider_ignore: tuple[str, ...] = ()
    provider_order: tuple[str, ...] = ()
    # These two come from the body's provider object only (provider_field.py).
    sort: str | None = None  # "price", "latency" or "throughput": the base order (rank's key)
    allow_fallbacks: bool = True  # False: only the first listing, or only provider_order's
    # The X-Max-Cost header only (max_cost.py): the most this request may cost, in nano-USD.
    max_cost_nusd: int | None = None


def _header(headers: dict[bytes, bytes], name: str) -> str | None:
    raw = headers.get(name.lower().encode())
    if raw is None:
        return None
    return raw.decode("latin-1").strip()


def _price(value: str, name: str) -> int:
    """USD per million input tokens → nano-USD; bounded (bounded_numbers/parse.py), a 400 naming it."""
    high = MAX_PRICE_PER_MILLION_NUSD // NUSD_PER_USD
    try:
        return bounded.fixed_text(value, what=f"Header {name}", low=0, high=high, places=9)
    except bounded.NumberError as exc:
        raise bad_request(
            f"{exc.message} It is a price in USD per million input tokens, e.g. 0.50."
        ) from None


def _number(value: str, name: str, unit: str, high: int) -> float:
    try:
        return bounded.float_text(value, what=f"Header {name}", low=0, high=high)
    except bounded.NumberError as exc:
        raise bad_request(f"{exc.message} It is a number of {unit}, from 0 to {high:,}.") from None


def _providers(value: str, name: str) -> tuple[str, ...]:
    slugs = tuple(part.strip().lower() for part in value.split(",") if part.strip())
    for slug in slugs:
        if not _SLUG.match(slug):
            raise bad_request(f"Header {name} must be a comma-separated list of provider slugs.")
    return slugs


def preferences(
    headers: dict[bytes, bytes], profile: dict | None, *, body: ProviderField | None = None
) -> Preferences:
    """Header > the body's provider object > profile > default, for every constraint; a malformed
    header is a 400 naming it (the body's object was parsed by provider_field.py)."""
    p = profile or {}
    b = body or ProviderField()
    strategy = _header(headers, "Routing-Strategy")
    if strategy is not None and strategy != "market-only":
        raise bad_request("Header Routing-Strategy must be 'market-only' (the only strategy).")

    def pick(name: str, parse, profile_value, body_value=None):
        raw = _header(headers, name)
        if raw is None or raw == "":
            return profile_value if body_value in (None, ()) else body_value
        return parse(raw)

    privacy = _header(headers, "X-Privacy-Mode")
    if privacy is None or privacy == "":
        trusted_only = b.trusted_only or p.get("privacy_mode") == "trusted_only"
    elif privacy in ("trusted_only", "any"):
        trusted_only = privacy == "trusted_only"
    else:
        raise bad_request("Header X-Privacy-Mode must be 'trusted_only' (or 'any').")

    def nullable_float(value) -> float | None:
        return None if value is None else float(value)

    return Preferences(
        max_input_price_nusd=pick(
            "X-Max-Price",
            lambda v: _price(v, "X-Max-Price"),
            p.get("max_input_price_nusd"),
            b.max_input_price_nusd,
        ),
        max_output_price_nusd=(
            p.get("max_output_price_nusd")
            if b.max_output_price_nusd is None
            else b.max_output_price_nusd
        ),
        soft_max_ttft_ms=pick(
            "X-Max-TTFT-Ms",
            lambda v: _number(v, "X-Max-TTFT-Ms", "milliseconds", bounded.TTFT_MS_MAX),
            nullable_float(p.get("soft_max_ttft_ms")),
            b.soft_max_ttft_ms,
        ),
        hard_max_ttft_ms=pick(
            "X-Hard-Max-TTFT-Ms",
            lambda v: _number(v, "X-Hard-Max-TTFT-Ms", "milliseconds", bounded.TTFT_MS_MAX),
            nullable_float(p.get("hard_max_ttft_ms")),
        ),
        soft_min_tps=pick(
            "X-Min-Throughput-TPS",
            lambda v: _number(v, "X-Min-Throughput-TPS", "tokens per second", bounded.TPS_MAX),
            nullable_float(p.get("soft_min_tps")),
            b.soft_min_tps,
        ),
        hard_min_tps=pick(
            "X-Hard-Min-Throughput-TPS",
            lambda v: _number(v, "X-Hard-Min-Throughput-TPS", "tokens per second", bounded.TPS_MAX),
            nullable_float(p.get("hard_min_tps")),
        ),
        trusted_only=trusted_only,
        provider_only=pick(
            "X-Provider-Only",
            lambda v: _providers(v, "X-Provider-Only"),
            tuple(p.get("provider_only") or ()),
            b.only,
        ),
        provider_ignore=pick(
            "X-Provider-Ignore",
            lambda v: _providers(v, "X-Provider-Ignore"),
            tuple(p.get("provider_ignore") or ()),
            b.ignore,
        ),
        provider_order=pick(
            "X-Provider-Order",
            lambda v: _providers(v, "X-Provider-Order"),
            tuple(p.get("provider_order") or ()),
            b.order,
        ),
        sort=b.sort,
        allow_fallbacks=b.allow_fallbacks,
        max_cost_nusd=max_cost.header(_header(headers, "X-Max-Cost")),
    )


# ---------------------------------------------------------------- filters and ranking


# Why a listing offering the model is not tried, in the order checked: each listing counts once in
# a 503's constraints, under the first that applies (docs/gateway.md, "Errors"). "paused" (and the
# status side of "suspended") comes from Table.offline: such listings are not candidates at all.
REASONS = (
    "suspended",
    "paused",
    "cooling_down",
    "capacity",
    "daily_spend_cap",
    "max_price",
    "max_output_price",
    "provider_only",
    "provider_ignore",
    "allow_fallbacks",
    "privacy_mode",
    "hard_max_ttft_ms",
    "hard_min_throughput_tps",
    "unmeasured",
    "max_cost",
)


def removed_by(c, prefs: Preferences, full: AbstractSet[int], dead: AbstractSet[int]) -> str | None:
    """The first reason (REASONS) that keeps candidate `c` from this request; None if eligible.
    `full`: at its concurrency cap or requests per minute (capacity.py); `dead`: its key was just
    rejected (dead_keys.py)."""
    if c.health == "suspended" or c.listing_id in dead:
        return "suspended"
    if c.health == "cooling_down":
        return "cooling_down"
    if c.listing_id in full:
        return "capacity"
    if c.daily_cap_reached:
        return "daily_spend_cap"
    if prefs.max_input_price_nusd is not None and c.ask_input_nusd > prefs.max_input_price_nusd:
        return "max_price"
    if prefs.max_output_price_nusd is not None and c.ask_output_nusd > prefs.max_output_price_nusd:
        return "max_output_price"
    if prefs.provider_only and c.provider_slug not in prefs.provider_only:
        return "provider_only"
    if prefs.provider_ignore and c.provider_slug in prefs.provider_ignore:
        return "provider_ignore"
    if (
        not prefs.allow_fallbacks
        and prefs.provider_order
        and c.provider_slug not in prefs.provider_order
    ):
        return "allow_fallbacks"  # OpenRouter: only the providers in `order`
    if prefs.trusted_only and not c.trusted:
        return "privacy_mode"
    ttft, tps = prefs.hard_max_ttft_ms, prefs.hard_min_tps
    if ttft is not None and c.ttft_p50_ms is not None and c.ttft_p50_ms > ttft:
        return "hard_max_ttft_ms"
    if tps is not None and c.tps_p50 is not None and c.tps_p50 < tps:
        return "hard_min_throughput_tps"
    # Strict means strict: a listing never measured cannot show that it meets a hard constraint.
    if (ttft is not None and c.ttft_p50_ms is None) or (tps is not None and c.tps_p50 is None):
        return "unmeasured"
    return None


def blended_price(candidate) -> int:
    """Base order: 3 parts input to 1 part output, the usual shape of chat traffic (per million)."""
    return (3 * candidate.ask_input_nusd + candidate.ask_output_nusd) // 4


def unavailable_extra(removed: dict[str, int], model_id: str) -> dict:
    """The 503's body beyond the seed's fields: why each listing offering the model was not tried
    (REASONS order, only the reasons that removed one), and the public market page that shows the
    model's listings, their asks, health and speed."""
    constraints = {reason: removed[reason] for reason in REASONS if removed.get(reason)}
    return {
        "constraints": constraints,
        "market": f"{settings.DRAGONFLY_BASE_URL}/market/{model_id}/",
    }


def rank_model(
    table: Table,
    model_id: str,
    prefs: Preferences,
    *,
    full: AbstractSet[int] = frozenset(),
    dropped: Mapping[int, str] | None = None,
    why_removed: dict[int, str] | None = None,
    keys: dict[int, tuple] | None = None,
) -> list:
    """rank() over the table's candidates for the model, leaving out the listings whose key this
    process just saw rejected, and counting the model's offline listings in a 503."""
    return rank(
        table.candidates.get(model_id, []),
        prefs,
        full=full,
        dead=dead_keys.excluded(table),
        offline=table.offline.get(model_id),
        model_id=model_id,
        dropped=dropped,
        why_removed=why_removed,
        keys=keys,
    )


def rank(
    candidates: list,
    prefs: Preferences,
    *,
    full: AbstractSet[int] = frozenset(),
    dead: AbstractSet[int] = frozenset(),
    offline: dict[str, int] | None = None,
    model_id: str = "",
    dropped: Mapping[int, str] | None = None,
    why_removed: dict[int, str] | None = None,
    keys: dict[int, tuple] | None = None,
) -> list:
    """Eligible candidates, best first, or 503 market_unavailable counting every listing offering
    the model under the reason that removed it (`offline`: those not in the table, by status;
    `dropped`: listings the request set aside after ranking, by reason: trade.rank's
    allow_fallbacks and max_cost, so a 503 found later at capacity counts them under it).
    `why_removed` and `keys`, when given, receive each removed listing's reason and each eligible
    one's rank_key, by listing id (route_outcomes.py counts from them)."""
    dropped = dropped or {}

    def why(c) -> str | None:
        return removed_by(c, prefs, full, dead) or dropped.get(c.listing_id)

    eligible = []
    for c in candidates:
        reason = why(c)
        if reason is None:
            eligible.append(c)
        elif why_removed is not None:
            why_removed[c.listing_id] = reason
    if not eligible:
        removed = dict(offline or {})
        for c in candidates:
            reason = why(c)
            assert reason is not None
            removed[reason] = removed.get(reason, 0) + 1
        model_id = model_id or (candidates[0].model_id if candidates else "")
        logger.info(
            "no eligible seller of %d candidates for %s: %s", len(candidates), model_id, removed
        )
        raise GatewayError(503, NO_ELIGIBLE_SELLER, extra=unavailable_extra(removed, model_id))
    order = provider_positions(prefs)
    if keys is None:
        return sorted(eligible, key=lambda c: rank_key(c, prefs, order))

    def kept(c) -> tuple:
        key = keys[c.listing_id] = rank_key(c, prefs, order)
        return key

    return sorted(eligible, key=kept)


def provider_positions(prefs: Preferences) -> dict[str, int]:
    """The buyer's provider order as slug -> position (rank_key's first part)."""
    return {slug: index for index, slug in enumerate(prefs.provider_order)}


# What each part of rank_key stands for: the first part in which a listing's key is greater than
# the winner's is why it lost (route_outcomes.py; "slower" also covers degraded health).
RANK_KEY_PARTS = ("provider_order", "slower", "sort", "cheaper", "tie")


def rank_key(c, prefs: Preferences, order: Mapping[str, int]) -> tuple:
    """Ranking's order, best first: the buyer's provider order, then how many soft preferences
    (and degraded health) it misses, then `provider.sort`, then the blended price, then the id."""
    misses = 0
    if prefs.soft_max_ttft_ms is not None and (
        c.ttft_p50_ms is not None and c.ttft_p50_ms > prefs.soft_max_ttft_ms
    ):
        misses += 1
    if prefs.soft_min_tps is not None and (
        c.tps_p50 is not None and c.tps_p50 < prefs.soft_min_tps
    ):
        misses += 1
    if c.health == "degraded":
        misses += 1
    return (
        order.get(c.provider_slug, len(order)),
        misses,
        _sort_value(c, prefs.sort),
        blended_price(c),
        c.listing_id,
    )


def _sort_value(candidate, sort: str | None) -> float:
    """The body's `provider.sort`: lowest blended price, lowest measured TTFT or highest measured
    throughput first; a listing not measured yet goes after every measured one."""
    if sort == "latency":
        return math.inf if candidate.ttft_p50_ms is None else candidate.ttft_p50_ms
    if sort == "throughput":
        return math.inf if candidate.tps_p50 is None else -candidate.tps_p50
    return 0.0  # price (the default): blended_price decides next


def fallbacks(ranked: list, prefs: Preferences) -> tuple[list, list]:
    """(the listings this request may try, those set aside): `allow_fallbacks: false` without an
    `order` keeps only the first (with an order, the filter above kept only its providers)."""
    if prefs.allow_fallbacks or prefs.provider_order:
        return ranked, []
    return ranked[:1], ranked[1:]


# ---------------------------------------------------------------- stickiness


def session_id(headers: dict[bytes, bytes]) -> str | None:
    value = _header(headers, "X-Session-Id")
    if not value:
        return None
    if not _SESSION_ID.match(value):
        raise bad_request("Header X-Session-Id must be 1-200 printable ASCII characters.")
    return value


def _sticky_key(user_id: int, session: str) -> str:
    return f"sticky:{user_id}:{session}"


async def stick(
    ranked: list, *, user_id: int, session: str | None
) -> tuple[list, price_lock.Pin | None]:
    """Move the session's pinned listing to the front while it stays eligible, at the session's
    locked asks (price_lock); also the pin as read, which `pin` renews."""
    if not session:
        return ranked, None
    pinned = price_lock.parse(
        await kv.attempt("stickiness", lambda r: r.get(_sticky_key(user_id, session)))
    )
    if pinned is None:
        return ranked, None
    for index, candidate in enumerate(ranked):
        if candidate.listing_id == pinned.listing_id:
            first = price_lock.locked(candidate, pinned, time.time())
            return [first, *ranked[:index], *ranked[index + 1 :]], pinned
    return ranked, pinned  # the pinned listing is no longer eligible: re-pinned after this request


async def pin(
    *, user_id: int, session: str | None, served: RouteCandidate, previous: price_lock.Pin | None
) -> None:
    """Pin the session to the listing that serves it, keeping or starting its price lock."""
    if session:
        value = price_lock.encode(price_lock.renewed(previous, served, time.time()))
        await kv.attempt(
            "stickiness",
            lambda r: r.set(_sticky_key(user_id, session), value, ex=STICKY_IDLE_SECONDS),
        )
