"""Limits the gateway enforces for others: a key's spend limit, a listing's capacity, and the
market health reports that let sellers see the speed of non-streamed traffic."""

import asyncio
import time

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings

from billing.models import Hold, UsageRecord
from redis_clients.clients import get_redis
from tests.gateway.factories import buyer_make, drained
from tests.market.factories import listing_make, seller_make

pytestmark = pytest.mark.django_db(transaction=True)
MODEL = "deepseek/deepseek-chat"
HELLO = [{"role": "user", "content": "Hello!"}]
# "Hello!" is 2 prompt tokens; 2 x $0.40/M + 100 x $1.20/M = 800 + 120,000 nano-USD per hold.
HOLD_NUSD = 120_800


def _auth(buyer):
    return {"Authorization": f"Bearer {buyer.key}"}


def _body(max_tokens=100, **extra):
    return {"model": MODEL, "messages": HELLO, "max_tokens": max_tokens, **extra}


async def test_a_key_that_has_spent_its_limit_is_refused_with_403_naming_the_keys_page(
    market, client
):
    from gateway import auth

    buyer = await sync_to_async(buyer_make)(spend_limit_usd="0.00001")  # 10,000 nano-USD
    await sync_to_async(lambda: listing_make(seller_make(), key="sim-spend?tokens=10"))()
    first = await client.post("/v1/chat/completions", headers=_auth(buyer), json=_body())
    assert first.status_code == 200, first.text
    await drained()
    record = await sync_to_async(UsageRecord.objects.get, thread_sensitive=False)(
        request_id=first.headers["x-df-market-request-id"]
    )
    assert record.buyer_debit_nusd == 2 * 400 + 10 * 1_200  # 12,800: past the 10,000 limit

    auth.cache_clear()  # what another process sees once its cache expires: the database's total
    refused = await client.post("/v1/chat/completions", headers=_auth(buyer), json=_body())
    assert refused.status_code == 403
    assert refused.json()["error"] == {
        "message": "This access key has reached its spend limit of $0.00001 (spent $0.0000128). "
        f"Raise or remove the limit at {settings.DRAGONFLY_BASE_URL}/dashboard/keys/",
        "type": "forbidden",
        "code": 403,
    }
    assert refused.headers["x-ratelimit-limit-requests"] == "unlimited"
    holds = await sync_to_async(lambda: Hold.objects.filter(user=buyer.user).count())()
    assert holds == 1


async def test_the_same_process_refuses_at_once_without_waiting_for_the_cache(market, client):
    buyer = await sync_to_async(buyer_make)(spend_limit_usd="0.00001")
    await sync_to_async(lambda: listing_make(seller_make(), key="sim-spend-now?tokens=10"))()
    assert (
        await client.post("/v1/chat/completions", headers=_auth(buyer), json=_body())
    ).status_code == 200
    await drained()
    refused = await client.post("/v1/messages", headers=_auth(buyer), json=_body())
    assert refused.status_code == 403
    assert refused.json()["error"]["type"] == "permission_error"
    assert "spend limit of $0.00001 (spent $0.0000128)" in refused.json()["error"]["message"]


async def test_concurrent_requests_are_admitted_only_while_their_holds_fit_under_the_limit(
    market, client
):
    buyer = await sync_to_async(buyer_make)(spend_limit_usd="0.0002")  # 200,000: one hold and a bit
    await sync_to_async(lambda: listing_make(seller_make(), key="sim-spend-rush?ttft_ms=800"))()
    responses = await asyncio.gather(
        *(client.post("/v1/chat/completions", headers=_auth(buyer), json=_body()) for _ in range(5))
    )
    # Each holds 166,000 (the prompt bound, the body's bytes + 16, and max_tokens 100 at the
    # listing's asks): 0 and 166,000 < 200,000 admit two; the third would start at 332,000.
    assert sorted(r.status_code for r in responses) == [200, 200, 403, 403, 403]
    refused = next(r for r in responses if r.status_code == 403)
    assert "with $0.000332 held for requests in flight" in refused.json()["error"]["message"]


async def test_a_listing_at_its_concurrency_cap_is_skipped_for_the_next(market, client):
    buyer = await sync_to_async(buyer_make)()
    cheap = await sync_to_async(
        lambda: listing_make(
            seller_make(), key="sim-cap-cheap?ttft_ms=800", percent=50, concurrency_cap=1
        )
    )()
    other = await sync_to_async(lambda: listing_make(seller_make(), key="sim-cap-other"))()
    slow = asyncio.ensure_future(
        client.post("/v1/chat/completions", headers=_auth(buyer), json=_body())
    )
    await asyncio.sleep(0.3)  # the first request holds the cheap listing's only slot
    second = await client.post("/v1/chat/completions", headers=_auth(buyer), json=_body())
    first = await slow
    assert first.headers["x-df-market-listing-id"] == str(cheap.pk)
    assert second.headers["x-df-market-listing-id"] == str(other.pk)
    await drained()
    assert get_redis().zcard(f"cap:inflight:{cheap.pk}") == 0  # the slot was given back
    third = await client.post("/v1/chat/completions", headers=_auth(buyer), json=_body())
    assert third.headers["x-df-market-listing-id"] == str(cheap.pk)


async def test_every_listing_at_capacity_is_a_503_counting_capacity(market, client):
    buyer = await sync_to_async(buyer_make)()
    await sync_to_async(
        lambda: listing_make(seller_make(), key="sim-cap-only?ttft_ms=800", concurrency_cap=1)
    )()
    slow = asyncio.ensure_future(
        client.post("/v1/chat/completions", headers=_auth(buyer), json=_body())
    )
    await asyncio.sleep(0.3)
    refused = await client.post("/v1/chat/completions", headers=_auth(buyer), json=_body())
    assert (await slow).status_code == 200
    assert refused.status_code == 503
    assert refused.json()["error"] == {
        "message": "No eligible seller channel was healthy enough for the current constraints.",
        "type": "market_unavailable",
        "code": 503,
        "constraints": {"capacity": 1},
        "market": "http://127.0.0.1:8000/market/deepseek/deepseek-chat/",
    }


async def test_a_listing_at_its_requests_per_minute_is_unavailable_until_the_next_minute(
    market, client
):
    if time.time() % 60 > 55:  # the three requests must fall in one minute
        await asyncio.sleep(60 - time.time() % 60 + 0.1)
    buyer = await sync_to_async(buyer_make)()
    await sync_to_async(lambda: listing_make(seller_make(), key="sim-rpm", requests_per_minute=2))()
    statuses = [
        (await client.post("/v1/chat/completions", headers=_auth(buyer), json=_body())).status_code
        for _ in range(3)
    ]
    assert statuses == [200, 200, 503]
    refused = await client.post("/v1/messages", headers=_auth(buyer), json=_body())
    assert refused.status_code == 503
    assert refused.json()["error"]["constraints"] == {"capacity": 1}
    assert refused.json()["error"]["type"] == "overloaded_error"


async def test_a_plain_success_reports_ttft_and_throughput_to_market_health(market, client):
    from market.health import health_get

    buyer = await sync_to_async(buyer_make)()
    listing = await sync_to_async(
        lambda: listing_make(seller_make(), key="sim-plain-health?ttft_ms=300&tokens=20")
    )()
    response = await client.post("/v1/chat/completions", headers=_auth(buyer), json=_body())
    assert response.status_code == 200
    await drained()
    view = health_get(listing.pk)
    assert view.ttft_p50_ms is not None and view.ttft_p50_ms >= 300
    assert view.tps_p50 is not None and 0 < view.tps_p50 <= 20 / 0.3
    record = await sync_to_async(UsageRecord.objects.get, thread_sensitive=False)(
        request_id=response.headers["x-df-market-request-id"]
    )
    assert record.output_units == 20
    assert record.ttft_ms is not None and record.ttft_ms >= 300
