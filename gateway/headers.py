"""Response headers: the X-DF-* route diagnostics (asks in USD per million units, decimal strings)."""

from __future__ import annotations

import time
from decimal import Decimal
from functools import lru_cache

NANO = Decimal(1_000_000_000)


def usd_text(nusd: int) -> str:
    """Nano-USD as exact dollars: 500_000_000 → "0.5", 12_345 → "0.000012345"; no float, no
    exponent, at most 9 decimals."""
    text = format(Decimal(nusd) / NANO, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


# An ask per million units, in USD: asks repeat (a few per listing), so they are cached.
usd_per_million = lru_cache(maxsize=4096)(usd_text)


def _utc(epoch: float) -> bytes:
    """When a session's price lock ends, RFC 3339 in UTC to the second."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch)).encode()


def request_map(scope: dict) -> dict[bytes, bytes]:
    """Request headers by lower-case name (ASGI servers already lower-case them)."""
    return dict(scope["headers"])


def diagnostics(candidate, *, fee_profile_id: int | None) -> list[tuple[bytes, bytes]]:
    locked = candidate.price_locked_until
    lock = [] if locked is None else [(b"x-df-market-price-locked-until", _utc(locked))]
    return [
        *lock,
        (b"x-df-market-route", b"seller"),
        (b"x-df-market-provider", candidate.provider_slug.encode()),
        (b"x-df-market-listing-id", str(candidate.listing_id).encode()),
        (b"x-df-upstream-model", candidate.upstream_model.encode()),
        (b"x-df-market-ask-input", usd_per_million(candidate.ask_input_nusd).encode()),
        (b"x-df-market-ask-output", usd_per_million(candidate.ask_output_nusd).encode()),
        (
            b"x-df-market-fee-profile-id",
            b"" if fee_profile_id is None else str(fee_profile_id).encode(),
        ),
    ]
