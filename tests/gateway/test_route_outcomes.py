"""Why traffic moved, counted where the gateway decides: real requests through the pipeline, two
listings of one model set up so that one loses for each reason, and the counts each one got."""

import dataclasses

import pytest
from asgiref.sync import sync_to_async

from gateway import route_outcomes, routing, runtime
from gateway.runtime import caches
from market.health_record import health_report
from tests.gateway.factories import buyer_make, drained
from tests.market.factories import listing_make, seller_make

pytestmark = pytest.mark.django_db(transaction=True)
MODEL = "deepseek/deepseek-chat"
HELLO = [{"role": "user", "content": "Hello!"}]


async def _listing(key: str, **fields):
    return await sync_to_async(lambda: listing_make(seller_make(), key=key, **fields))()


async def _measured(listing, *, ttft: float, tps: float) -> None:
    await sync_to_async(health_report)(
        listing_id=listing.pk,
        ok=True,
        status_code=200,
        ttft_ms=ttft,
        tokens_per_second=tps,
        passive=False,
    )


async def _failed(listing, *, status: int, times: int) -> None:
    for _ in range(times):
        await sync_to_async(health_report)(
            listing_id=listing.pk,
            ok=False,
            status_code=status,
            ttft_ms=None,
            tokens_per_second=None,
            error="test",
            passive=False,
        )


def _counted() -> dict[tuple[int, str], int]:
    """This loop's counts not yet written, by (listing, reason); then forgotten."""
    state = runtime.current()
    counted: dict[tuple[int, str], int] = {}
    for (listing_id, model_id, reason, _minute), n in state.outcomes_pending.items():
        assert model_id == MODEL
        counted[(listing_id, reason)] = counted.get((listing_id, reason), 0) + n
    state.outcomes_pending.clear()
    return counted


async def _post(client, buyer, *, headers=None, provider=None):
    body = {"model": MODEL, "messages": HELLO}
    if provider is not None:
        body["provider"] = provider
    return await client.post(
        "/v1/chat/completions",
        headers={"Authorization": f"Bearer {buyer.key}", **(headers or {})},
        json=body,
    )


async def _pair(**b_fields):
    """A: cheap (50 % of list), slow, untrusted. B: dearer (90 %), fast, trusted unless told."""
    a = await _listing("sim-ro-a", percent=50)
    b = await _listing("sim-ro-b", percent=90, trusted=True, **b_fields)
    await _measured(a, ttft=900, tps=10)
    await _measured(b, ttft=100, tps=80)
    return a, b


@pytest.mark.parametrize(
    ("headers", "provider", "served", "a_reason", "b_reason"),
    [
        ({}, None, "a", "won", "cheaper"),
        ({"X-Privacy-Mode": "trusted_only"}, None, "b", "privacy_mode", "won"),
        ({"X-Hard-Max-TTFT-Ms": "500"}, None, "b", "hard_max_ttft_ms", "won"),
        ({"X-Hard-Min-Throughput-TPS": "50"}, None, "b", "hard_min_throughput_tps", "won"),
        ({"X-Max-TTFT-Ms": "500"}, None, "b", "slower", "won"),
        ({"X-Min-Throughput-TPS": "50"}, None, "b", "slower", "won"),
        ({}, {"sort": "latency"}, "b", "sort", "won"),
        ({}, {"allow_fallbacks": False}, "a", "won", "allow_fallbacks"),
        ({"X-Max-Price": "0.30"}, None, "a", "won", "max_price"),
        ({}, {"max_price": {"completion": 0.8}}, "a", "won", "max_output_price"),
    ],
)
async def test_each_listing_is_counted_under_why_it_won_or_lost(
    market, client, headers, provider, served, a_reason, b_reason
):
    buyer = await sync_to_async(buyer_make)()
    a, b = await _pair()
    response = await _post(client, buyer, headers=headers, provider=provider)
    assert response.status_code == 200, response.text
    assert response.headers["x-df-market-listing-id"] == str({"a": a, "b": b}[served].pk)
    assert _counted() == {(a.pk, a_reason): 1, (b.pk, b_reason): 1}


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({"X-Max-Price": "0.01"}, "max_price"),
        ({"X-Provider-Ignore": "deepseek"}, "provider_ignore"),
        ({"X-Provider-Only": "minimax"}, "provider_only"),
    ],
)
async def test_a_request_that_went_nowhere_counts_every_listing_under_its_filter(
    market, client, headers, reason
):
    buyer = await sync_to_async(buyer_make)()
    a, b = await _pair()
    response = await _post(client, buyer, headers=headers)
    assert response.status_code == 503
    assert _counted() == {(a.pk, reason): 1, (b.pk, reason): 1}


async def test_an_equal_ask_loses_on_the_tie(market, client):
    buyer = await sync_to_async(buyer_make)()
    a = await _listing("sim-ro-a", percent=70)
    b = await _listing("sim-ro-b", percent=70)
    response = await _post(client, buyer)
    assert response.status_code == 200
    assert _counted() == {(a.pk, "won"): 1, (b.pk, "tie"): 1}


async def test_health_cooling_down_and_suspended(market, client):
    buyer = await sync_to_async(buyer_make)()
    a, b = await _pair()
    c = await _listing("sim-ro-c", percent=60)
    await _failed(a, status=500, times=3)  # market.health.FAIL_THRESHOLD
    await _failed(c, status=401, times=1)  # the provider rejected the key
    response = await _post(client, buyer)
    assert response.status_code == 200
    assert _counted() == {(a.pk, "cooling_down"): 1, (c.pk, "suspended"): 1, (b.pk, "won"): 1}


async def test_an_upstream_failure_counts_failed_and_the_next_listing_wins(market, client):
    buyer = await sync_to_async(buyer_make)()
    a = await _listing("sim-ro-a?status=500", percent=50)
    b = await _listing("sim-ro-b", percent=90)
    response = await _post(client, buyer)
    assert response.status_code == 200
    assert _counted() == {(a.pk, "failed"): 1, (b.pk, "won"): 1}


async def test_every_listing_failing_counts_failed_and_no_winner(market, client):
    buyer = await sync_to_async(buyer_make)()
    a = await _listing("sim-ro-a?status=500", percent=50)
    b = await _listing("sim-ro-b?status=500", percent=90)
    response = await _post(client, buyer)
    assert response.status_code == 502
    assert _counted() == {(a.pk, "failed"): 1, (b.pk, "failed"): 1}


async def test_requests_per_minute_used_up_counts_requests_per_minute(market, client):
    buyer = await sync_to_async(buyer_make)()
    a = await _listing("sim-ro-a", percent=50, requests_per_minute=1)
    b = await _listing("sim-ro-b", percent=90)
    assert (await _post(client, buyer)).status_code == 200
    await drained()
    assert (await _post(client, buyer)).status_code == 200
    assert _counted() == {
        (a.pk, "won"): 1,
        (b.pk, "cheaper"): 1,
        (a.pk, "requests_per_minute"): 1,
        (b.pk, "won"): 1,
    }


async def test_a_full_concurrency_cap_counts_capacity(market, client):
    from types import SimpleNamespace

    from gateway import capacity

    buyer = await sync_to_async(buyer_make)()
    a = await _listing("sim-ro-a", percent=50, concurrency_cap=1)
    b = await _listing("sim-ro-b", percent=90)
    busy = await capacity.take(  # another request in flight on A
        SimpleNamespace(listing_id=a.pk, concurrency_cap=1, requests_per_minute=None)
    )
    assert (await _post(client, buyer)).status_code == 200
    assert _counted() == {(a.pk, "capacity"): 1, (b.pk, "won"): 1}
    busy.release()
    await capacity.flush()


async def test_every_listing_at_its_cap_counts_capacity_for_each(market, client):
    buyer = await sync_to_async(buyer_make)()
    a = await _listing("sim-ro-a", percent=50, requests_per_minute=1)
    b = await _listing("sim-ro-b", percent=90, requests_per_minute=1)
    assert (await _post(client, buyer)).status_code == 200
    assert (await _post(client, buyer)).status_code == 200
    _counted()
    response = await _post(client, buyer)
    assert response.status_code == 503
    assert response.json()["error"]["constraints"] == {"capacity": 2}  # the 503 names both caps so
    assert _counted() == {(a.pk, "requests_per_minute"): 1, (b.pk, "requests_per_minute"): 1}


async def test_a_used_up_daily_spend_cap_is_counted(market, client):
    buyer = await sync_to_async(buyer_make)()
    a, b = await _pair()
    table = await routing.reload()
    # The routing table as it is once the seller's earnings today reach the cap (RouteCandidate).
    capped = [
        dataclasses.replace(c, daily_cap_reached=c.listing_id == a.pk)
        for c in table.candidates[MODEL]
    ]
    caches.routing_table = dataclasses.replace(
        table, candidates={**table.candidates, MODEL: capped}
    )
    response = await _post(client, buyer)
    assert response.status_code == 200
    assert _counted() == {(a.pk, "daily_spend_cap"): 1, (b.pk, "won"): 1}


async def test_a_session_pinned_elsewhere_counts_sticky(market, client):
    buyer = await sync_to_async(buyer_make)()
    a, b = await _pair()
    session = {"X-Session-Id": "ro-session"}
    # B serves the session's first request (A misses the soft TTFT), and the session is pinned.
    first = await _post(client, buyer, headers={**session, "X-Max-TTFT-Ms": "500"})
    assert first.headers["x-df-market-listing-id"] == str(b.pk)
    _counted()
    second = await _post(client, buyer, headers=session)
    assert second.headers["x-df-market-listing-id"] == str(b.pk)
    assert _counted() == {(a.pk, "sticky"): 1, (b.pk, "won"): 1}


async def test_a_buyer_who_cannot_pay_is_nobody_s_lost_request(market, client):
    buyer = await sync_to_async(lambda: buyer_make(credit_usd="0.000001"))()  # less than any hold
    await _pair()
    response = await _post(client, buyer)
    assert response.status_code == 403  # refused at the hold, after ranking
    assert response.json()["error"]["message"] == "Insufficient balance"
    assert _counted() == {}


async def test_the_counts_reach_the_table_through_the_flush(market, client):
    from market.models import RouteOutcome

    buyer = await sync_to_async(buyer_make)()
    a, b = await _pair()
    for _ in range(3):
        assert (await _post(client, buyer)).status_code == 200
    await route_outcomes.flush()
    assert runtime.current().outcomes_pending == {}
    rows = await sync_to_async(
        lambda: sorted(
            RouteOutcome.objects.values_list("listing_id", "model_id", "reason", "requests")
        )
    )()
    assert rows == sorted([(a.pk, MODEL, "won", 3), (b.pk, MODEL, "cheaper", 3)])


async def test_shutdown_writes_what_the_flusher_has_not(market, client):
    from gateway.asgi import shutdown
    from market.models import RouteOutcome

    buyer = await sync_to_async(buyer_make)()
    a, b = await _pair()
    assert (await _post(client, buyer)).status_code == 200
    assert runtime.current().outcomes_pending  # not written yet: the flusher runs every 10 s
    await shutdown()
    rows = await sync_to_async(
        lambda: sorted(RouteOutcome.objects.values_list("listing_id", "reason", "requests"))
    )()
    assert rows == sorted([(a.pk, "won", 1), (b.pk, "cheaper", 1)])
