"""The capacity slot and the hold are asked for together: the hold covers every eligible listing,
a wallet that cannot cover that is asked again for exactly the listings the request may try, and a
request that finds every listing full leaves no hold behind."""

from types import SimpleNamespace

import pytest
from asgiref.sync import sync_to_async
from django.test import override_settings

from billing.models import Hold, UsageRecord
from billing.selectors import wallet_summary
from gateway import capacity
from tests.gateway.factories import buyer_make
from tests.market.factories import listing_make, seller_make

pytestmark = pytest.mark.django_db(transaction=True)
BODY = {
    "model": "deepseek/deepseek-chat",
    "messages": [{"role": "user", "content": "Hello!"}],
    "max_tokens": 100_000,  # worst case at 40% of list: $0.06, at 80%: $0.12
}


def _auth(buyer):
    return {"Authorization": f"Bearer {buyer.key}"}


async def test_a_wallet_that_covers_only_the_listing_it_may_try_is_served(market, client):
    buyer = await sync_to_async(buyer_make)(credit_usd="0.10")
    cheap = await sync_to_async(lambda: listing_make(seller_make(), key="sim-cheap", percent=40))()
    await sync_to_async(lambda: listing_make(seller_make(), key="sim-dear", percent=80))()
    with override_settings(DRAGONFLY_MAX_ATTEMPTS=1):  # only the cheap listing may be tried
        response = await client.post("/v1/chat/completions", headers=_auth(buyer), json=BODY)
    assert response.status_code == 200, response.text
    assert response.headers["x-df-market-listing-id"] == str(cheap.pk)
    record = await sync_to_async(UsageRecord.objects.get)(buyer=buyer.user)
    summary = await sync_to_async(wallet_summary)(user=buyer.user)
    assert (summary["balance_nusd"], summary["held_nusd"]) == (
        100_000_000 - record.buyer_debit_nusd,
        0,
    )


async def test_a_wallet_that_cannot_cover_a_listing_it_may_fail_over_to_is_refused(market, client):
    buyer = await sync_to_async(buyer_make)(credit_usd="0.10")
    await sync_to_async(lambda: listing_make(seller_make(), key="sim-cheap", percent=40))()
    await sync_to_async(lambda: listing_make(seller_make(), key="sim-dear", percent=80))()
    response = await client.post("/v1/chat/completions", headers=_auth(buyer), json=BODY)
    assert response.status_code == 403
    assert response.json()["error"]["message"].startswith("Insufficient balance")
    assert not await sync_to_async(Hold.objects.exists)()
    assert (await sync_to_async(wallet_summary)(user=buyer.user))["held_nusd"] == 0
    assert market.app.stats()["keys"] == {}  # no upstream call


async def test_every_listing_full_is_a_503_that_leaves_no_hold(market, client):
    buyer = await sync_to_async(buyer_make)()
    listing = await sync_to_async(lambda: listing_make(seller_make(), concurrency_cap=1))()
    busy = await capacity.take(
        SimpleNamespace(listing_id=listing.pk, concurrency_cap=1, requests_per_minute=None)
    )
    response = await client.post("/v1/chat/completions", headers=_auth(buyer), json=BODY)
    assert response.status_code == 503
    assert response.json()["error"]["constraints"] == {"capacity": 1}
    hold = await sync_to_async(Hold.objects.get)()
    assert (hold.status, hold.void_reason) == ("voided", "every listing at capacity")
    assert (await sync_to_async(wallet_summary)(user=buyer.user))["held_nusd"] == 0
    busy.release()
    await capacity.flush()


async def test_a_busy_buyers_request_takes_its_slot_and_its_reserve_with_no_round_trip(
    market, client, redis_scripts
):
    """With a slot kept by the previous request (capacity shares) and a balance lease to draw
    from, the request asks neither Redis nor PostgreSQL before the upstream call."""
    from gateway import background, billing_calls

    buyer = await sync_to_async(buyer_make)(credit_usd="10")
    await sync_to_async(lambda: listing_make(seller_make(), key="sim-busy", percent=40))()
    body = {**BODY, "max_tokens": 100}
    scripts = redis_scripts
    for _ in range(2):  # the first places a hold of its own; the second, the buyer's lease
        response = await client.post("/v1/chat/completions", headers=_auth(buyer), json=body)
        assert response.status_code == 200, response.text
    await background.drain()
    holds, taken = await sync_to_async(Hold.objects.count)(), len(scripts)
    assert holds == 2

    response = await client.post("/v1/chat/completions", headers=_auth(buyer), json=body)
    assert response.status_code == 200, response.text
    await background.drain()
    assert (await sync_to_async(Hold.objects.count)(), len(scripts)) == (holds, taken)
    await billing_calls.end_leases()
    await capacity.flush()
    summary = await sync_to_async(wallet_summary)(user=buyer.user)
    assert summary["held_nusd"] == 0
    records = await sync_to_async(list)(UsageRecord.objects.filter(buyer=buyer.user))
    assert len(records) == 3 and all(r.buyer_debit_nusd > 0 for r in records)
