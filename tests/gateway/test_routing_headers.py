"""Each routing header through the real pipeline, alone and against a routing profile that says
otherwise (header > profile > default), over two listings with measured TTFT and throughput."""

import pytest
from asgiref.sync import sync_to_async

from billing.models import Hold
from market.health_record import health_report
from tests.gateway.factories import buyer_make
from tests.market.factories import listing_make, seller_make

pytestmark = pytest.mark.django_db(transaction=True)
MODEL = "deepseek/deepseek-chat"
HELLO = [{"role": "user", "content": "Hello!"}]
USD = 1_000_000_000

# A: cheap ($0.25/M in), slow (900 ms, 10 tok/s), untrusted. B: $0.45/M in, fast (100 ms, 80), trusted.
CASES = [
    # (profile fields, headers, the listing that serves, or the 503's constraint counts)
    ({}, {}, "A"),
    ({}, {"Routing-Strategy": "market-only"}, "A"),
    ({}, {"X-Max-Price": "0.30"}, "A"),
    ({}, {"X-Max-Price": "0.20"}, {"max_price": 2}),
    ({"max_input_price_nusd": USD // 5}, {}, {"max_price": 2}),
    ({"max_input_price_nusd": USD // 5}, {"X-Max-Price": "0.50"}, "A"),
    ({}, {"X-Hard-Max-TTFT-Ms": "500"}, "B"),
    ({}, {"X-Hard-Max-TTFT-Ms": "50"}, {"hard_max_ttft_ms": 2}),
    ({"hard_max_ttft_ms": 500}, {}, "B"),
    ({"hard_max_ttft_ms": 50}, {"X-Hard-Max-TTFT-Ms": "1000"}, "A"),
    ({}, {"X-Hard-Min-Throughput-TPS": "50"}, "B"),
    ({"hard_min_tps": 50}, {}, "B"),
    ({"hard_min_tps": 500}, {"X-Hard-Min-Throughput-TPS": "5"}, "A"),
    ({}, {"X-Max-TTFT-Ms": "500"}, "B"),  # soft: reorders
    ({}, {"X-Max-TTFT-Ms": "50"}, "A"),  # soft: both miss, price decides, nothing removed
    ({"soft_max_ttft_ms": 500}, {}, "B"),
    ({"soft_max_ttft_ms": 500}, {"X-Max-TTFT-Ms": "5000"}, "A"),
    ({}, {"X-Min-Throughput-TPS": "50"}, "B"),
    ({"soft_min_tps": 50}, {"X-Min-Throughput-TPS": "5"}, "A"),
    ({}, {"X-Privacy-Mode": "trusted_only"}, "B"),
    ({"privacy_mode": "trusted_only"}, {}, "B"),
    ({"privacy_mode": "trusted_only"}, {"X-Privacy-Mode": "any"}, "A"),
    ({}, {"X-Provider-Only": "minimax"}, {"provider_only": 2}),
    ({}, {"X-Provider-Only": "deepseek,minimax"}, "A"),
    ({"provider_only": ["minimax"]}, {}, {"provider_only": 2}),
    ({"provider_only": ["minimax"]}, {"X-Provider-Only": "DeepSeek"}, "A"),
    ({}, {"X-Provider-Ignore": "deepseek"}, {"provider_ignore": 2}),
    ({"provider_ignore": ["deepseek"]}, {}, {"provider_ignore": 2}),
    ({"provider_ignore": ["deepseek"]}, {"X-Provider-Ignore": "minimax"}, "A"),
    ({}, {"X-Provider-Order": "minimax,deepseek"}, "A"),
    (
        {"privacy_mode": "trusted_only"},
        {"X-Max-Price": "0.30", "X-Hard-Max-TTFT-Ms": "50"},
        {"max_price": 1, "privacy_mode": 1},  # each listing under the first reason only
    ),
]


@pytest.mark.parametrize(("profile", "headers", "expected"), CASES)
async def test_a_routing_header_alone_and_against_the_profile(
    market, client, profile, headers, expected
):
    buyer = await sync_to_async(buyer_make)(**profile)
    a = await sync_to_async(lambda: listing_make(seller_make(), key="sim-rh-a", percent=50))()
    b = await sync_to_async(
        lambda: listing_make(seller_make(), key="sim-rh-b", percent=90, trusted=True)
    )()
    for listing, ttft, tps in ((a, 900, 10), (b, 100, 80)):  # as the prober measures them
        await sync_to_async(health_report)(
            listing_id=listing.pk,
            ok=True,
            status_code=200,
            ttft_ms=ttft,
            tokens_per_second=tps,
            passive=False,
        )
    response = await client.post(
        "/v1/chat/completions",
        headers={"Authorization": f"Bearer {buyer.key}", **headers},
        json={"model": MODEL, "messages": HELLO},
    )
    if isinstance(expected, dict):
        assert response.status_code == 503
        assert response.json() == {
            "error": {
                "message": "No eligible seller channel was healthy enough for the current "
                "constraints.",
                "type": "market_unavailable",
                "code": 503,
                "constraints": expected,
                "market": "http://127.0.0.1:8000/market/deepseek/deepseek-chat/",
            }
        }
        assert market.app.stats()["keys"] == {}
        assert await sync_to_async(Hold.objects.filter(user=buyer.user).count)() == 0
        return
    assert response.status_code == 200, response.text
    served = {"A": a, "B": b}[expected]
    assert response.headers["x-df-market-listing-id"] == str(served.pk)
    assert list(market.app.stats()["keys"]) == [f"sim-rh-{expected.lower()}"]
