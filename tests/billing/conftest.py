"""Factories for billing tests: real users, listings and money moved through real services."""

import itertools
from dataclasses import replace

import pytest

from billing import services
from billing.money import usd_to_nusd
from billing.settlement import Settlement

_seq = itertools.count(1)


def user_make(email: str | None = None, **extra):
    from accounts.models import User

    email = email or f"user{next(_seq)}@example.com"
    return User.objects.create_user(
        email=email, password="pw-123456789", email_canonical=email, **extra
    )


def listing_make(*, seller, name: str = "listing"):
    from market.models import Listing, Provider

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


def fund(user, usd: str) -> None:
    services.credit_grant(user=user, amount_nusd=usd_to_nusd(usd), reason="test funds")


def settlement_make(*, buyer, seller, listing, request_id: str, **overrides) -> Settlement:
    base = Settlement(
        request_id=request_id,
        buyer_id=buyer.pk,
        access_key_id=None,
        listing_id=listing.pk,
        seller_id=seller.pk,
        model_id="deepseek/deepseek-chat",
        upstream_model="deepseek-chat",
        price_unit="token",
        ask_input_nusd=270_000_000,  # $0.27 / M
        ask_output_nusd=1_100_000_000,  # $1.10 / M
        input_units=1000,
        output_units=500,
        ttft_ms=120,
        duration_ms=900,
        streamed=True,
        outcome="completed",
    )
    return replace(base, **overrides)


@pytest.fixture
def market():
    """A buyer with $1, a seller with one listing."""
    buyer = user_make()
    seller = user_make()
    listing = listing_make(seller=seller)
    fund(buyer, "1")
    return buyer, seller, listing


@pytest.fixture(params=["sql", "orm"])
def billing_impl(request, settings):
    """Run a money-core test against both implementations: the PostgreSQL functions (the fast
    path) and the ORM path (what SQLite, the embedded default, runs). Use it with
    `pytestmark = pytest.mark.usefixtures("billing_impl")`."""
    from django.db import connection

    if request.param == "sql" and connection.vendor != "postgresql":
        pytest.skip("the SQL fast path needs PostgreSQL")
    settings.DRAGONFLY_BILLING_SQL_FASTPATH = request.param == "sql"
    return request.param
