"""Factories for gateway tests: the market a request needs, and buyers with credit and a key.

Users, sellers and listings come from tests/accounts/factories.py and tests/market/factories.py.
"""

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
from tests.accounts.factories import user_make

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
    user = user_make()
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


async def drained() -> None:
    """Wait until the gateway's background work (capacity, health reports, spawned tasks, passive
    health) has landed, so a test reads what a request wrote."""
    from gateway import background, capacity, health_reports
    from market.health_passive import background_drain

    await capacity.flush()
    await health_reports.flush()
    await background.drain()
    await background_drain()
