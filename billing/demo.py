"""Billing's part of `seed_demo`: the default fee profile and the platform ledger accounts."""

from billing.models import AccountKind
from billing.services import account_platform, fee_profile_default_ensure

PLATFORM_KINDS = [
    AccountKind.FEE_REVENUE,
    AccountKind.PROMOTIONS,
    AccountKind.STRIPE_CLEARING,
    AccountKind.OVERRUN,
    AccountKind.PAYOUTS_PENDING,
    AccountKind.PAYOUTS_CLEARING,
    AccountKind.ADJUSTMENTS,
]


def seed(*, upstream_url: str) -> str:
    profile = fee_profile_default_ensure()
    for kind in PLATFORM_KINDS:
        account_platform(kind=kind)
    return f"fee profile {profile.name} at {profile.fee_bps} bps; {len(PLATFORM_KINDS)} platform accounts"
