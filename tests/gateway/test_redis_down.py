"""With Redis unreachable the gateway fails open: per-process limits, no stickiness, money safe."""

import pytest
from asgiref.sync import sync_to_async
from django.test import override_settings

from billing.models import UsageRecord
from gateway import runtime
from observability.metrics import GATEWAY_REDIS_ERRORS
from tests.gateway.factories import buyer_make
from tests.market.factories import listing_make, seller_make

pytestmark = pytest.mark.django_db(transaction=True)


async def test_requests_are_served_and_settled_when_redis_is_down(market, client, monkeypatch):
    buyer = await sync_to_async(buyer_make)(plan="free")
    await sync_to_async(lambda: listing_make(seller_make(), key="sim-noredis"))()
    from gateway import routing

    await routing.reload()  # the table's health read needs Redis; load it while Redis is up
    await runtime.current().close_redis()  # the next call connects with the current REDIS_URL
    before = GATEWAY_REDIS_ERRORS.labels("rate_limit")._value.get()
    with override_settings(REDIS_URL="redis://127.0.0.1:1/0"):
        responses = [
            await client.post(
                "/v1/chat/completions",
                headers={"Authorization": f"Bearer {buyer.key}", "X-Session-Id": "s1"},
                json={
                    "model": "deepseek/deepseek-chat",
                    "messages": [{"role": "user", "content": "Hi"}],
                },
            )
            for _ in range(10)  # the free plan's 10 per minute (tests/gateway/test_redis_faults.py)
        ]
    await runtime.current().close_redis()  # the next call connects with the current REDIS_URL
    assert [r.status_code for r in responses] == [200] * 10
    assert responses[0].headers["x-ratelimit-limit-requests"] == "10"
    assert responses[0].headers["x-ratelimit-remaining-requests"] == "9"  # counted in process
    assert GATEWAY_REDIS_ERRORS.labels("rate_limit")._value.get() - before == 10
    from gateway import background

    await background.drain()
    count = await sync_to_async(UsageRecord.objects.filter(buyer=buyer.user).count)()
    assert count == 10
