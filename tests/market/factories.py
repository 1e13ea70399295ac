"""Factories for market: sellers and listings, through the market's services."""

from __future__ import annotations

import itertools

from billing.money import usd_to_nusd
from market import services
from market.models import CatalogModel, Listing, ListingStatus, Provider
from tests.accounts.factories import user_make

_seq = itertools.count(1)


def seller_make(*, verified: bool = True, email: str | None = None):
    """A user who accepted the current seller terms."""
    user = user_make(email, verified=verified)
    services.terms_ensure_v1()
    services.terms_accept(user=user, audience="seller", ip_address="127.0.0.1")
    return user


def listing_make(
    seller,
    *,
    key: str = "sim-good",
    provider: str = "deepseek",
    models: tuple[str, ...] = ("deepseek/deepseek-chat",),
    ask_input: str | None = None,
    ask_output: str | None = None,
    percent: int = 80,
    status: str = ListingStatus.ACTIVE,
    name: str | None = None,
    verify: bool = False,
    trusted: bool = False,
    concurrency_cap: int = 8,
    requests_per_minute: int | None = None,
) -> Listing:
    """A listing with one offer per catalogue model, asking `percent` of list (or the asks given)."""
    offers = []
    for model_id in models:
        model = CatalogModel.objects.get(model_id=model_id)
        offers.append(
            services.OfferInput(
                model=model,
                ask_input_nusd=usd_to_nusd(ask_input)
                if ask_input
                else model.list_input_nusd * percent // 100,
                ask_output_nusd=usd_to_nusd(ask_output)
                if ask_output
                else model.list_output_nusd * percent // 100,
            )
        )
    listing = services.listing_create(
        seller=seller,
        provider=Provider.objects.get(slug=provider),
        name=name or f"listing {next(_seq)}",
        upstream_key=key,
        offers=offers,
        status=status,
        verify=verify,
        concurrency_cap=concurrency_cap,
        requests_per_minute=requests_per_minute,
    )
    if trusted:
        services.listing_set_trusted(listing_id=listing.pk, trusted=True)
    return listing


def listing_row_make(*, seller, name: str = "listing") -> Listing:
    """A bare active listing row (no catalogue, no offers, no key check): what money tests settle to."""
    provider, _ = Provider.objects.get_or_create(
        slug="sim", defaults={"name": "Simulated", "base_url": "http://127.0.0.1:9100"}
    )
    return Listing.objects.create(
        seller=seller,
        provider=provider,
        name=name,
        status="active",
        key_ciphertext=b"x",
        key_id="k1",
        key_last4="abcd",
    )
