"""Why traffic moved: the reasons a listing won or lost requests for its models, their one write
(the gateway's flush), their reads for the seller's page, and the advice they lead to.

The gateway decides and counts (gateway/route_outcomes.py); this module owns the vocabulary, so
the page and the counter cannot drift apart: a reason the gateway counts and this module does not
know is shown under "other" rather than dropped. Sellers see counts and the cheapest healthy ask
of each model they offer, never another seller's or a buyer's identity.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.db import connection, transaction
from django.db.models import F, Sum
from django.db.models.functions import TruncHour
from django.utils import timezone

from billing.money import format_usd
from market import health
from market.models import Listing, ListingModel, ListingStatus, RouteOutcome

RETENTION_DAYS = 8  # the longest window (7 days) and a day of slack

# The groups the chart stacks, in its order, with their colours and the seller's words.
GROUPS = {
    "won": ("Won", "#1f7a5c"),
    "price": ("A cheaper listing won", "#b7791f"),
    "buyer_filter": ("The buyer's filter removed it", "#2e6fd8"),
    "health": ("Its health", "#c0392b"),
    "caps": ("Its own caps", "#7b4bb7"),
    "slower": ("Slower than the buyer's preference", "#2c8c99"),
    "sticky": ("Session pinned elsewhere", "#8a6d3b"),
    "other": ("Other", "#99a"),
}

# reason -> (group, what happened to the request, in the seller's words). The codes of the
# filters are gateway/routing.REASONS'; the rest are gateway/route_outcomes.py's.
REASONS: dict[str, tuple[str, str]] = {
    "won": ("won", "Served by this listing"),
    "cheaper": ("price", "A cheaper eligible listing served it"),
    "tie": ("price", "An equally priced listing served it (ties go to the older listing)"),
    "max_price": ("buyer_filter", "Input ask above the buyer's price cap"),
    "max_output_price": ("buyer_filter", "Output ask above the buyer's price cap"),
    "max_cost": ("buyer_filter", "Worst case above the buyer's X-Max-Cost"),
    "provider_only": ("buyer_filter", "The buyer allowed only other providers"),
    "provider_ignore": ("buyer_filter", "The buyer ignores this provider"),
    "provider_order": ("buyer_filter", "The buyer's provider order put another first"),
    "allow_fallbacks": ("buyer_filter", "The buyer allowed no fallback to this listing"),
    "privacy_mode": ("buyer_filter", "The buyer asked for trusted listings only"),
    "hard_max_ttft_ms": ("buyer_filter", "Time to first token above the buyer's hard limit"),
    "hard_min_throughput_tps": ("buyer_filter", "Throughput below the buyer's hard minimum"),
    "unmeasured": ("buyer_filter", "Not measured yet, and the buyer set a hard speed limit"),
    "sort": ("buyer_filter", "The buyer sorted by latency or throughput"),
    "suspended": ("health", "Suspended: the provider rejected the key"),
    "cooling_down": ("health", "Cooling down after failures"),
    "degraded": ("health", "Degraded health ranked it lower"),
    "failed": ("health", "The upstream failed, another listing was tried"),
    "capacity": ("caps", "At its concurrency cap"),
    "requests_per_minute": ("caps", "At its requests per minute"),
    "at_a_cap": ("caps", "At its concurrency or per-minute cap when failover reached it"),
    "daily_spend_cap": ("caps", "Its daily spend cap was used up"),
    "slower": ("slower", "Slower than the buyer's soft TTFT or throughput preference"),
    "sticky": ("sticky", "The buyer's session was pinned to another listing"),
    "not_reached": ("other", "The request ended before this listing's turn"),
}

# window -> (its length, one chart bar, its name on the page)
WINDOWS = {
    "1h": (timedelta(hours=1), timedelta(minutes=5), "last hour"),
    "24h": (timedelta(hours=24), timedelta(hours=1), "last 24 hours"),
    "7d": (timedelta(days=7), timedelta(hours=6), "last 7 days"),
}
DEFAULT_WINDOW = "24h"


# ---------------------------------------------------------------- the write (the gateway's flush)

_ADD = """
INSERT INTO {table} (listing_id, model_id, reason, minute, requests)
SELECT u.listing_id, u.model_id, u.reason, to_timestamp(u.minute * 60), u.requests
FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::bigint[], %s::bigint[])
     WITH ORDINALITY AS u(listing_id, model_id, reason, minute, requests, n)
JOIN {listings} l ON l.id = u.listing_id
ORDER BY u.n
ON CONFLICT (listing_id, minute, model_id, reason)
DO UPDATE SET requests = {table}.requests + EXCLUDED.requests
"""


def route_outcomes_add(*, counts: dict[tuple[int, str, str, int], int]) -> None:
    """Add `counts` ((listing id, model id, reason, minute since the epoch) -> requests) to the
    rows, in one statement. Rows are written in key order, so two processes flushing at once lock
    the rows they share in the same order and never deadlock; a listing deleted meanwhile is
    skipped (the join) rather than failing the others. PostgreSQL; SQLite: _add_embedded."""
    if not counts:
        return
    keys = sorted(counts)
    if connection.vendor != "postgresql":
        _add_embedded(keys, counts)
        return
    sql = _ADD.format(table=RouteOutcome._meta.db_table, listings=Listing._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            sql,
            [
                [k[0] for k in keys],
                [k[1] for k in keys],
                [k[2] for k in keys],
                [k[3] for k in keys],
                [counts[k] for k in keys],
            ],
        )


_ADD_EMBEDDED = """
INSERT INTO {table} (listing_id, model_id, reason, minute, requests) VALUES {rows}
ON CONFLICT (listing_id, minute, model_id, reason)
DO UPDATE SET requests = {table}.requests + excluded.requests
"""
_EMBEDDED_ROWS = 150  # 5 parameters a row, under SQLite's 999 in older builds


def _add_embedded(keys: list[tuple[int, str, str, int]], counts: dict) -> None:
    """The same upsert for SQLite (the embedded default, docs/architecture.md): no unnest, so
    VALUES rows; no join, so deleted listings are left out first. One writer at a time there."""
    live = set(Listing.objects.filter(pk__in={k[0] for k in keys}).values_list("pk", flat=True))
    keys = [k for k in keys if k[0] in live]
    adapt = connection.ops.adapt_datetimefield_value
    with transaction.atomic(), connection.cursor() as cursor:
        for start in range(0, len(keys), _EMBEDDED_ROWS):
            chunk = keys[start : start + _EMBEDDED_ROWS]
            params: list = []
            for listing_id, model_id, reason, minute in chunk:
                at = datetime.fromtimestamp(minute * 60, tz=UTC)
                params += [
                    listing_id,
                    model_id,
                    reason,
                    adapt(at),
                    counts[(listing_id, model_id, reason, minute)],
                ]
            rows = ", ".join(["(%s, %s, %s, %s, %s)"] * len(chunk))
            cursor.execute(
                _ADD_EMBEDDED.format(table=RouteOutcome._meta.db_table, rows=rows), params
            )


def route_outcomes_prune(*, now: datetime | None = None) -> int:
    """Delete the rows older than RETENTION_DAYS; how many."""
    before = (now or timezone.now()) - timedelta(days=RETENTION_DAYS)
    deleted, _ = RouteOutcome.objects.filter(minute__lt=before).delete()
    return deleted


# ---------------------------------------------------------------- the reads (the seller's page)


@dataclass
class ReasonRow:
    reason: str
    group: str
    label: str
    requests: int
    share: float  # of every request for the listing's models that it saw in the window
    advice: list[str] = field(default_factory=list)


@dataclass
class TrafficMoved:
    window: str
    window_label: str
    since: datetime
    bucket: timedelta
    total: int  # requests for the listing's models in the window (each counted once)
    won: int
    rows: list[ReasonRow]  # by reason, most requests first
    bars: list[tuple[datetime, dict[str, int]]]  # bar start -> group -> requests
    price_notes: list[str]  # per model: this ask against the cheapest healthy one

    @property
    def won_share(self) -> float:
        return self.won / self.total if self.total else 0.0


def _group_of(reason: str) -> str:
    return REASONS.get(reason, ("other", ""))[0]


def route_outcomes_summary(*, listing, window: str, now: datetime | None = None) -> TrafficMoved:
    """Requests for `listing`'s models over `window` (WINDOWS; anything else is DEFAULT_WINDOW):
    per reason, per chart bar, and what the seller could change. One grouped query, and one
    for the market's cheapest healthy asks (with their health, from Redis)."""
    if window not in WINDOWS:
        window = DEFAULT_WINDOW
    length, bucket, _ = WINDOWS[window]
    now = now or timezone.now()
    since = now - length
    # Short windows read minutes, long ones hours (at most 168 rows per reason over 7 days).
    at = F("minute") if bucket < timedelta(hours=1) else TruncHour("minute")
    timeline = (
        RouteOutcome.objects.filter(listing=listing, minute__gt=since)
        .annotate(at=at)
        .values("at", "reason")
        .annotate(n=Sum("requests"))
        .order_by()
    )
    step = bucket.total_seconds()
    first = int(since.timestamp() // step) + 1
    last = int(now.timestamp() // step)
    bars: dict[int, dict[str, int]] = {i: {} for i in range(first, last + 1)}
    by_reason: dict[str, int] = {}
    for point in timeline:
        reason, n = point["reason"], point["n"]
        by_reason[reason] = by_reason.get(reason, 0) + n
        groups = bars[min(max(int(point["at"].timestamp() // step), first), last)]
        group = _group_of(reason)
        groups[group] = groups.get(group, 0) + n
    total = sum(by_reason.values())
    reason_rows = [
        ReasonRow(
            reason=reason,
            group=_group_of(reason),
            label=REASONS.get(reason, ("other", reason))[1],
            requests=n,
            share=n / total,
        )
        for reason, n in sorted(by_reason.items(), key=lambda item: (-item[1], item[0]))
    ]
    price_notes = _price_notes(listing)
    behind = [note for note, dearer in price_notes if dearer]
    for row in reason_rows:
        row.advice = behind if row.reason in ("cheaper", "tie") else _advice(row, listing)
    return TrafficMoved(
        window=window,
        window_label=WINDOWS[window][2],
        since=since,
        bucket=bucket,
        total=total,
        won=by_reason.get("won", 0),
        rows=reason_rows,
        bars=[
            (datetime.fromtimestamp(i * step, tz=timezone.get_current_timezone()), groups)
            for i, groups in sorted(bars.items())
        ],
        price_notes=[note for note, _ in price_notes],
    )


def _blended(ask_input_nusd: int, ask_output_nusd: int) -> int:
    """The routing's base order (gateway/routing.blended_price): 3 parts input to 1 part output."""
    return (3 * ask_input_nusd + ask_output_nusd) // 4


def _price_notes(listing) -> list[tuple[str, bool]]:
    """For each model the listing offers: its blended ask against the cheapest healthy active
    listing's (cooling down and suspended listings are not eligible, so they do not count), and
    whether it is not below it (a tie loses too, to the older listing)."""
    offers = list(listing.offers.select_related("model"))
    model_ids = [offer.model_id for offer in offers]
    market = list(
        ListingModel.objects.filter(model_id__in=model_ids, listing__status=ListingStatus.ACTIVE)
        .exclude(listing=listing)
        .only("listing_id", "model_id", "ask_input_nusd", "ask_output_nusd")
    )
    views = health.health_many({o.listing_id for o in market})
    cheapest: dict[int, int] = {}
    for other in market:
        if views[other.listing_id].state in (health.COOLING_DOWN, health.SUSPENDED):
            continue
        price = _blended(other.ask_input_nusd, other.ask_output_nusd)
        cheapest[other.model_id] = min(price, cheapest.get(other.model_id, price))
    notes = []
    for offer in offers:
        mine = _blended(offer.ask_input_nusd, offer.ask_output_nusd)
        name = offer.model.model_id
        best = cheapest.get(offer.model_id)
        if best is None:
            notes.append((f"{name}: no other healthy listing offers it now.", False))
        elif mine > best:
            # A free cheapest ask has no percentage: the amounts say it.
            shown = f"{(mine - best) / best * 100:.0f}% " if best else ""
            text = (
                f"{name}: your ask is {shown}above the cheapest healthy listing "
                f"({format_usd(best)} against your {format_usd(mine)} per million "
                "tokens, 3 parts input to 1 part output)."
            )
            notes.append((text, True))
        elif mine == best:
            notes.append((f"{name}: your ask equals the cheapest healthy listing's.", True))
        else:
            notes.append((f"{name}: your ask is the cheapest healthy one.", False))
    return notes


def _advice(row: ReasonRow, listing) -> list[str]:
    """What the seller could change, for the reasons they can act on (price: _price_notes)."""
    n = f"{row.requests:,} request{'s' if row.requests != 1 else ''}"
    if row.reason == "capacity":
        cap = listing.concurrency_cap
        return [f"Your concurrency cap ({cap}) refused {n}: raise it if your upstream allows."]
    if row.reason == "requests_per_minute":
        rpm = listing.requests_per_minute  # None: removed since
        cap = f"cap of {rpm} requests per minute" if rpm else "requests-per-minute cap"
        return [f"Your {cap} refused {n}: raise it if your upstream allows."]
    if row.reason == "at_a_cap":
        return [f"Your caps refused {n} on failover: raise them if your upstream allows."]
    if row.reason == "daily_spend_cap":
        return [f"Your daily spend cap refused {n}: raise it to serve them."]
    if row.reason in ("max_price", "max_output_price", "max_cost"):
        return [f"Buyers' price limits excluded your ask on {n}: a lower ask would qualify."]
    if row.reason == "privacy_mode":
        return [f"{n} wanted trusted listings only: ask an operator about trusted status."]
    if row.reason in ("hard_max_ttft_ms", "hard_min_throughput_tps", "slower", "degraded"):
        return [f"{n} went to faster listings: a faster upstream or region would win them."]
    if row.reason in ("cooling_down", "failed"):
        return [f"Upstream failures cost {n}: check your key's quota and the provider's status."]
    if row.reason == "suspended":
        return ["The provider rejected your key: replace it on this page."]
    if row.reason == "sticky":
        return ["Sessions stay on the listing that served them (30 min idle): win the first."]
    return []
