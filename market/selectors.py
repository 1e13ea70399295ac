"""Reads of the market: the routing table, the catalogue, listings scoped to their seller, terms."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from string import ascii_uppercase

from django.db.models import Count, Prefetch, Q, QuerySet
from django.http import Http404
from django.utils import timezone

from accounts.selectors import email_is_verified
from market import crypto, health
from market.models import (
    AuthenticityCheck,
    CatalogModel,
    HealthSample,
    HealthSource,
    Listing,
    ListingModel,
    ListingStatus,
    TermsAcceptance,
    TermsVersion,
)
from market.route_candidates import RouteCandidate

# Listings the prober looks at: live ones and those waiting for verification.
PROBED_STATUSES = (ListingStatus.ACTIVE, ListingStatus.PENDING)


def routing_table() -> dict[str, list[RouteCandidate]]:
    """Model id -> candidates, cheapest first (input + output ask, then input ask, then id).

    One query and one Redis pipeline. Only active listings of active providers and models appear;
    cooling_down or suspended health is returned as such (not filtered) so the gateway can say which
    constraint emptied the candidate set.
    """
    offers = list(
        ListingModel.objects.filter(
            listing__status=ListingStatus.ACTIVE,
            listing__provider__is_active=True,
            model__is_active=True,
        ).select_related("listing__provider", "model")
    )
    views = health.health_many({offer.listing_id for offer in offers})
    capped = _daily_caps_reached(offers)
    table: dict[str, list[RouteCandidate]] = {}
    for offer in offers:
        listing, model, provider = offer.listing, offer.model, offer.listing.provider
        view = views[listing.pk]
        table.setdefault(model.model_id, []).append(
            RouteCandidate(
                listing_id=listing.pk,
                seller_id=listing.seller_id,
                provider_slug=provider.slug,
                wire_format=provider.wire_format,
                base_url=provider.base_url.rstrip("/"),
                model_id=model.model_id,
                upstream_model=model.upstream_name,
                upstream_params=model.upstream_params or {},
                modality=model.modality,
                price_unit=model.price_unit,
                ask_input_nusd=offer.ask_input_nusd,
                ask_output_nusd=offer.ask_output_nusd,
                trusted=listing.trusted,
                concurrency_cap=listing.concurrency_cap,
                requests_per_minute=listing.requests_per_minute,
                health=view.state,
                ttft_p50_ms=view.ttft_p50_ms,
                tps_p50=view.tps_p50,
                context_tokens=model.context_tokens,
                daily_cap_reached=listing.pk in capped,
            )
        )
    for candidates in table.values():
        candidates.sort(
            key=lambda c: (c.ask_input_nusd + c.ask_output_nusd, c.ask_input_nusd, c.listing_id)
        )
    return table


# Listings that offer a model but are out of the market for now: they ride in the routing table
# only as counts, so a 503 can say why (docs/gateway.md, "Errors"). Pending, rejected and deleted
# listings offer nothing: they never served, or never will again.
OFFLINE_STATUSES = {ListingStatus.SUSPENDED: "suspended", ListingStatus.PAUSED: "paused"}


def routing_offline_counts() -> dict[str, dict[str, int]]:
    """Model id -> {"suspended": n, "paused": n}: the listings of active providers offering the
    active model whose status keeps them out of routing_table() (one grouped query)."""
    rows = (
        ListingModel.objects.filter(
            listing__status__in=list(OFFLINE_STATUSES),
            listing__provider__is_active=True,
            model__is_active=True,
        )
        .values_list("model__model_id", "listing__status")
        .annotate(listings=Count("listing_id", distinct=True))
        .order_by()
    )
    counts: dict[str, dict[str, int]] = {}
    for model_id, status, listings in rows:
        counts.setdefault(model_id, {})[OFFLINE_STATUSES[status]] = listings
    return counts


def _daily_caps_reached(offers) -> set[int]:
    """Listings whose sales today reached their seller's daily spend cap (one grouped query)."""
    from billing.selectors import listing_sales_today

    caps = {
        o.listing_id: o.listing.daily_spend_cap_nusd
        for o in offers
        if o.listing.daily_spend_cap_nusd is not None
    }
    sales = listing_sales_today(listing_ids=caps)
    return {listing_id for listing_id, cap in caps.items() if sales.get(listing_id, 0) >= cap}


def catalogue_list() -> list[dict]:
    models = CatalogModel.objects.filter(is_active=True, provider__is_active=True).select_related(
        "provider"
    )
    return [
        {
            "model_id": m.model_id,
            "display_name": m.display_name or m.model_id,
            "provider_slug": m.provider.slug,
            "upstream_model": m.upstream_name,
            "modality": m.modality,
            "price_unit": m.price_unit,
            "list_input_nusd": m.list_input_nusd,
            "list_output_nusd": m.list_output_nusd,
            "context_tokens": m.context_tokens,
            "capabilities": list(m.capabilities or []),
            "platform_default": m.platform_default,
        }
        for m in models
    ]


def listing_upstream_key(*, listing_id: int) -> str:
    """Decrypt the seller key. Only the gateway (at call time) and the prober call this."""
    row = Listing.objects.filter(pk=listing_id).values("key_id", "key_ciphertext").first()
    if row is None:
        raise Listing.DoesNotExist(f"listing #{listing_id} does not exist")
    return crypto.key_decrypt(listing_id=listing_id, kid=row["key_id"], blob=row["key_ciphertext"])


# --- Trading Terms ---------------------------------------------------------------------------


def terms_current(*, audience: str) -> TermsVersion | None:
    """The highest published version for the audience."""
    return (
        TermsVersion.objects.filter(audience=audience, published_at__isnull=False)
        .order_by("-version")
        .first()
    )


def terms_accepted_current(*, user, audience: str) -> bool:
    current = terms_current(audience=audience)
    if current is None or not getattr(user, "is_authenticated", False):
        return False
    return TermsAcceptance.objects.filter(user=user, terms=current).exists()


def seller_is_active(*, user) -> bool:
    """A seller is a verified user (accounts' rule, the buyer's too) who accepted the current seller terms."""
    return (
        getattr(user, "is_authenticated", False)
        and email_is_verified(user=user)
        and terms_accepted_current(user=user, audience="seller")
    )


# --- Listings, scoped to their seller ----------------------------------------------------------


def _listings_with_offers() -> QuerySet[Listing]:
    return Listing.objects.select_related("provider").prefetch_related(
        Prefetch("offers", queryset=ListingModel.objects.select_related("model"))
    )


def listing_list(*, seller) -> list[Listing]:
    return list(_listings_with_offers().filter(seller=seller).exclude(status=ListingStatus.DELETED))


def listing_get(*, seller, listing_id: int) -> Listing:
    """The seller's own listing, or 404 (another seller's listing is indistinguishable from none)."""
    listing = (
        _listings_with_offers()
        .filter(pk=listing_id, seller=seller)
        .exclude(status=ListingStatus.DELETED)
        .first()
    )
    if listing is None:
        raise Http404("No such listing")
    return listing


def listings_to_probe(*, listing_ids: list[int] | None = None) -> list[Listing]:
    qs = _listings_with_offers().filter(status__in=PROBED_STATUSES, provider__is_active=True)
    if listing_ids is not None:
        qs = qs.filter(pk__in=listing_ids)
    return list(qs)


def health_samples(*, listing_ids: list[int], hours: int = 24, limit: int = 2000) -> list:
    since = timezone.now() - timedelta(hours=hours)
    return list(
        HealthSample.objects.filter(listing_id__in=listing_ids, at__gte=since).order_by("-at")[
            :limit
        ]
    )


UPTIME_BUCKET = timedelta(minutes=10)


def probe_uptime_buckets(
    *, listing_ids: list[int], hours: int = 24
) -> dict[int, list[tuple[datetime, float]]]:
    """Per listing, the share of successful probes in each UPTIME_BUCKET of the last `hours`.

    Probes only: passive successes are sampled at most once a minute while every passive failure
    is kept, so mixing them in would understate uptime. One query, grouped here.
    """
    now = timezone.now()
    counts: dict[int, dict[float, list[int]]] = {}
    rows = HealthSample.objects.filter(
        listing_id__in=listing_ids, source=HealthSource.PROBE, at__gte=now - timedelta(hours=hours)
    ).values_list("listing_id", "at", "ok")
    step = UPTIME_BUCKET.total_seconds()
    for listing_id, at, ok in rows.iterator():
        tally = counts.setdefault(listing_id, {}).setdefault(at.timestamp() // step * step, [0, 0])
        tally[0] += int(ok)
        tally[1] += 1

    def middle(start: float) -> datetime:  # the running bucket is drawn at now, not ahead of it
        return min(datetime.fromtimestamp(start + step / 2, tz=UTC), now)

    return {
        listing_id: [(middle(start), ok / total) for start, (ok, total) in sorted(buckets.items())]
        for listing_id, buckets in counts.items()
    }


def last_probe_errors(*, listing_ids: list[int]) -> dict[int, HealthSample]:
    """The most recent failed sample of each listing (one query)."""
    latest: dict[int, HealthSample] = {}
    if not listing_ids:
        return latest
    rows = (
        HealthSample.objects.filter(listing_id__in=listing_ids, ok=False)
        .order_by("listing_id", "-at")
        .distinct("listing_id")
        if _supports_distinct_on()
        else HealthSample.objects.filter(listing_id__in=listing_ids, ok=False).order_by("-at")
    )
    for sample in rows:
        latest.setdefault(sample.listing_id, sample)
    return latest


def _supports_distinct_on() -> bool:
    from django.db import connection

    return connection.features.can_distinct_on_fields


# --- The public market -----------------------------------------------------------------------


def market_models() -> list[dict]:
    """Every active model with how many active listings offer it and the lowest ask."""
    models = list(
        CatalogModel.objects.filter(is_active=True, provider__is_active=True)
        .select_related("provider")
        .prefetch_related(
            Prefetch(
                "offers",
                queryset=ListingModel.objects.filter(listing__status=ListingStatus.ACTIVE),
                to_attr="active_offers",
            )
        )
    )
    rows = []
    for model in models:
        offers = model.active_offers  # type: ignore[attr-defined]
        rows.append(
            {
                "model": model,
                "listings": len(offers),
                "min_ask_input_nusd": min((o.ask_input_nusd for o in offers), default=None),
                "min_ask_output_nusd": min((o.ask_output_nusd for o in offers), default=None),
            }
        )
    return rows


def market_model_detail(*, model_id: str) -> tuple[CatalogModel, list[dict]]:
    """A model and its active listings, anonymised ("Seller A", ...) and cheapest first."""
    model = (
        CatalogModel.objects.filter(model_id=model_id, is_active=True)
        .select_related("provider")
        .first()
    )
    if model is None:
        raise Http404("No such model")
    offers = sorted(
        ListingModel.objects.filter(model=model, listing__status=ListingStatus.ACTIVE).only(
            "ask_input_nusd", "ask_output_nusd", "listing_id"
        ),
        key=lambda o: (o.ask_input_nusd + o.ask_output_nusd, o.ask_input_nusd, o.listing_id),
    )
    views = health.health_many([o.listing_id for o in offers])
    rows = []
    for i, offer in enumerate(offers):
        view = views[offer.listing_id]
        rows.append(
            {
                "listing_id": offer.listing_id,  # for the page's charts; never rendered
                "label": f"Seller {_label(i)}",
                "ask_input_nusd": offer.ask_input_nusd,
                "ask_output_nusd": offer.ask_output_nusd,
                "health": view.state,
                "ttft_p50_ms": view.ttft_p50_ms,
                "tps_p50": view.tps_p50,
                "uptime": view.uptime,
            }
        )
    return model, rows


def _label(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = ascii_uppercase[rem] + letters
    return letters


def listings_to_check_authenticity(
    *, listing_ids: list[int] | None = None, trusted_peers: bool = False
) -> list[Listing]:
    """Active listings of active providers (the authenticity probes' candidates), trusted ones
    first; `trusted_peers` adds the trusted listings that offer a model of the given ones."""
    qs = _listings_with_offers().filter(status=ListingStatus.ACTIVE, provider__is_active=True)
    if listing_ids is not None:
        wanted = Q(pk__in=listing_ids)
        if trusted_peers:
            models = ListingModel.objects.filter(listing_id__in=listing_ids).values("model_id")
            wanted |= Q(trusted=True, offers__model_id__in=models)
        qs = qs.filter(wanted).distinct()
    return list(qs.order_by("-trusted", "pk"))


def authenticity_checks_recent(*, listing_id: int, limit: int = 10) -> list[AuthenticityCheck]:
    """The listing's latest authenticity checks, newest first (the seller portal's table)."""
    return list(
        AuthenticityCheck.objects.filter(listing_id=listing_id)
        .select_related("model")
        .order_by("-at", "-pk")[:limit]
    )
