"""Rate limits in process: the key's own throttles, tokens per minute, and the headers' values."""

import asyncio
import time

import pytest
from asgiref.sync import sync_to_async

from billing.models import Hold
from tests.gateway.factories import buyer_make
from tests.market.factories import listing_make, seller_make

pytestmark = pytest.mark.django_db(transaction=True)
MODEL = "deepseek/deepseek-chat"
HELLO = [{"role": "user", "content": "Hello!"}]
SIX = (
    "x-ratelimit-limit-requests",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-requests",
    "x-ratelimit-reset-tokens",
)


async def _same_minute(requests: int) -> None:
    """Start where `requests` quick requests all fall in one fixed window."""
    if time.time() % 60 > 60 - requests:
        await asyncio.sleep(60 - time.time() % 60 + 0.1)


def _post(client, buyer, max_tokens=10):
    return client.post(
        "/v1/chat/completions",
        headers={"Authorization": f"Bearer {buyer.key}"},
        json={"model": MODEL, "messages": HELLO, "max_tokens": max_tokens},
    )


async def test_the_keys_own_requests_per_minute_is_enforced_below_the_plan(market, client):
    await _same_minute(5)
    buyer = await sync_to_async(buyer_make)(plan="starter", key_rpm=2)
    await sync_to_async(lambda: listing_make(seller_make(), key="sim-rl-key?tokens=3"))()
    responses = [await _post(client, buyer) for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 429]
    assert [r.headers["x-ratelimit-remaining"] for r in responses] == ["1", "0", "0"]
    assert [r.headers["x-ratelimit-limit-requests"] for r in responses] == ["2", "2", "2"]
    refused = responses[2]
    reset_at = int(refused.headers["x-ratelimit-reset"])
    assert reset_at % 60 == 0 and 0 < reset_at - time.time() <= 60
    assert refused.headers["retry-after"] == refused.headers["x-ratelimit-reset-requests"][:-1]
    assert refused.json()["error"]["type"] == "rate_limit_exceeded"
    assert refused.json()["error"]["code"] == 429
    for response in responses:
        for name in SIX:
            assert name in response.headers, name
    assert market.app.stats()["keys"]["sim-rl-key"]["requests"] == 2  # the 429 reached no seller
    assert await sync_to_async(Hold.objects.filter(user=buyer.user).count)() == 2


async def test_tokens_per_minute_counts_the_estimate_then_the_actual_usage(market, client):
    await _same_minute(5)
    # Starter: 200,000 tokens/min; the key's own throttle is 1,000.
    buyer = await sync_to_async(buyer_make)(plan="starter", key_tpm=1_000)
    await sync_to_async(lambda: listing_make(seller_make(), key="sim-rl-tokens?tokens=5"))()
    first = await _post(client, buyer, max_tokens=500)  # 2 prompt + 500 allowed = 502 up front
    assert first.status_code == 200
    assert first.headers["x-ratelimit-limit-tokens"] == "1000"
    assert first.headers["x-ratelimit-remaining-tokens"] == "498"
    from gateway import background

    await background.drain()
    # Corrected to what the first used (2 + 5 = 7), so 993 remain before this one's 502.
    second = await _post(client, buyer, max_tokens=500)
    assert second.status_code == 200
    assert second.headers["x-ratelimit-remaining-tokens"] == str(1_000 - 7 - 502)
    too_big = await _post(client, buyer, max_tokens=2_000)
    assert too_big.status_code == 429
    assert too_big.json()["error"]["message"] == (
        "This request may use up to 2002 tokens, more than your tokens-per-minute limit allows: "
        "lower max_tokens or shorten the prompt."
    )
