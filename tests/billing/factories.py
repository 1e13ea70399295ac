"""Factories for billing: money moved through real services, and the gateway's settlement record."""

from dataclasses import replace

from billing import services
from billing.money import usd_to_nusd
from billing.settlement_data import Settlement


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
