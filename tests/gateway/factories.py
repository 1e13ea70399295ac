"""Factories for gateway tests: real buyers, keys, sellers, listings and credit through the apps' services."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from allauth.account.models import EmailAddress

from accounts import services as account_services
from accounts.models import Plan, User
from billing import services as billing_services
from billing.money import usd_to_nusd
from market import services as market_services
from market.demo import catalogue_seed
from market.models import CatalogModel, Listing, ListingStatus, Provider

_seq = itertools.count(1)


@dataclass
class Buyer:
    user: User
    key: str  # the sk-df- secret
    key_id: int


def market_make(upstream_url: str) -> None:
    """Plans, the seed's catalogue pointed at the simulator, and published Trading Terms."""
    account_services.plans_ensure()  # a transactional test's flush removed the migration's rows
    catalogue_seed(upstream_url=upstream_url)
    market_services.terms_ensure_v1()


def user_make(*, verified: bool = True, email: str | None = None) -> User:
    email = email or f"gw{next(_seq)}-{id(object())}@example.com"
    user = User.objects.create_user(email, "pw-123456789", email_canonical=email)
    EmailAddress.objects.create(user=user, email=user.email, verified=verified, primary=True)
    return user


def buyer_make(
    *,
    credit_usd: str = "10",
    plan: str = "enterprise",
    terms: bool = True,
    verified: bool = True,
    key_rpm: int | None = None,
    key_tpm: int | None = None,
    spend_limit_usd: str | None = None,
    **profile_fields,
) -> Buyer:
    user = user_make(verified=True)
    user.plan_override = Plan.objects.get(slug=plan)
    user.save(update_fields=["plan_override"])
    if terms:
        market_services.terms_accept(user=user, audience="buyer", ip_address="127.0.0.1")
    if credit_usd and usd_to_nusd(credit_usd) > 0:
        billing_services.credit_grant(
            user=user, amount_nusd=usd_to_nusd(credit_usd), reason="test credit"
        )
    profile = account_services.routing_profile_default(user=user)
    if profile_fields:
        for name, value in profile_fields.items():
            setattr(profile, name, value)
        profile.save()
    key, secret = account_services.access_key_create(
        user=user,
        name=f"key{next(_seq)}",
        profile=profile,
        requests_per_minute=key_rpm,
        tokens_per_minute=key_tpm,
        spend_limit_nusd=usd_to_nusd(spend_limit_usd) if spend_limit_usd else None,
    )
    if not verified:
        EmailAddress.objects.filter(user=user).update(verified=False)
    return Buyer(user=user, key=secret, key_id=key.pk)


def seller_make() -> User:
    user = user_make()
    market_services.terms_accept(user=user, audience="seller", ip_address="127.0.0.1")
    return user


def listing_make(
    seller: User,
    *,
    key: str = "sim-good",
    provider: str = "deepseek",
    models: tuple[str, ...] = ("deepseek/deepseek-chat",),
    ask_input: str | None = None,
    ask_output: str | None = None,
    percent: int = 80,
    trusted: bool = False,
    concurrency_cap: int = 8,
    requests_per_minute: int | None = None,
) -> Listing:
    offers = []
    for model_id in models:
        model = CatalogModel.objects.get(model_id=model_id)
        offers.append(
            market_services.OfferInput(
                model=model,
                ask_input_nusd=usd_to_nusd(ask_input)
                if ask_input
                else model.list_input_nusd * percent // 100,
                ask_output_nusd=usd_to_nusd(ask_output)
                if ask_output
                else model.list_output_nusd * percent // 100,
            )
        )
    listing = market_services.listing_create(
        seller=seller,
        provider=Provider.objects.get(slug=provider),
        name=f"listing {next(_seq)}",
        upstream_key=key,
        offers=offers,
        status=ListingStatus.ACTIVE,
        verify=False,
        concurrency_cap=concurrency_cap,
        requests_per_minute=requests_per_minute,
    )
    if trusted:
        market_services.listing_set_trusted(listing_id=listing.pk, trusted=True)
    return listing
