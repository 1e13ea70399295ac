"""The body's `provider` object through the real pipeline: it routes like the headers (which win),
never reaches the upstream, works on chat and Messages, and garbage in it changes nothing."""

import orjson
import pytest
from asgiref.sync import sync_to_async

from billing.models import Hold
from gateway import billing_calls
from market.health_record import health_report
from tests.gateway.factories import buyer_make
from tests.market.factories import listing_make, seller_make

pytestmark = pytest.mark.django_db(transaction=True)
MODEL = "deepseek/deepseek-chat"
HELLO = [{"role": "user", "content": "Hello!"}]


async def _two_listings():
    """A: cheap, slow, untrusted. B: dearer, fast, trusted (as the prober measured them)."""
    a = await sync_to_async(lambda: listing_make(seller_make(), key="sim-pr-a", percent=50))()
    b = await sync_to_async(
        lambda: listing_make(seller_make(), key="sim-pr-b", percent=90, trusted=True)
    )()
    for listing, ttft, tps in ((a, 900, 10), (b, 100, 80)):
        await sync_to_async(health_report)(
            listing_id=listing.pk,
            ok=True,
            status_code=200,
            ttft_ms=ttft,
            tokens_per_second=tps,
            passive=False,
        )
    return a, b


def _sent(market, name: str) -> dict:
    return orjson.loads(market.app.registry.stats[name].last_body)


@pytest.mark.parametrize(
    ("provider", "headers", "served"),
    [
        ({}, {}, "a"),
        ({"sort": "latency"}, {}, "b"),
        ({"sort": "throughput"}, {}, "b"),
        ({"sort": {"by": "price"}}, {}, "a"),
        ({"data_collection": "deny"}, {}, "b"),
        ({"data_collection": "deny"}, {"X-Privacy-Mode": "any"}, "a"),  # the header wins
        ({"max_price": {"prompt": 0.3}}, {}, "a"),
        ({"sort": "latency", "max_price": {"prompt": 0.3}}, {}, "a"),
        ({"max_price": {"prompt": 0.01}}, {"X-Max-Price": "1"}, "a"),  # the header wins
        ({"only": ["deepseek"], "ignore": ["minimax"], "require_parameters": True}, {}, "a"),
        ({"order": ["minimax", "deepseek"], "allow_fallbacks": True}, {}, "a"),
        ({"preferred_max_latency": 0.5}, {}, "b"),  # seconds: A's 900 ms misses it
        ({"preferred_max_latency": {"p50": 0.5, "p90": 1}}, {}, "b"),
        ({"preferred_max_latency": 0.5}, {"X-Max-TTFT-Ms": "5000"}, "a"),  # the header wins
        ({"preferred_min_throughput": 50}, {}, "b"),
    ],
)
async def test_the_body_routes_like_the_headers_and_never_reaches_the_upstream(
    market, client, provider, headers, served
):
    buyer = await sync_to_async(buyer_make)()
    a, b = await _two_listings()
    response = await client.post(
        "/v1/chat/completions",
        headers={"Authorization": f"Bearer {buyer.key}", **headers},
        json={"model": MODEL, "messages": HELLO, "provider": provider},
    )
    assert response.status_code == 200, response.text
    listing = {"a": a, "b": b}[served]
    assert response.headers["x-df-market-listing-id"] == str(listing.pk)
    assert list(market.app.stats()["keys"]) == [f"sim-pr-{served}"]
    sent = _sent(market, f"sim-pr-{served}")
    assert "provider" not in sent
    assert sent["messages"] == HELLO


@pytest.mark.parametrize(
    ("provider", "headers", "constraints"),
    [
        ({"max_price": {"prompt": 0.01}}, {}, {"max_price": 2}),
        ({"max_price": {"completion": 0.01}}, {}, {"max_output_price": 2}),
        ({"ignore": ["deepseek"]}, {}, {"provider_ignore": 2}),
        ({"only": ["minimax"]}, {}, {"provider_only": 2}),
        ({"only": ["deepseek"]}, {"X-Provider-Only": "minimax"}, {"provider_only": 2}),
        ({"order": ["minimax"], "allow_fallbacks": False}, {}, {"allow_fallbacks": 2}),
    ],
)
async def test_a_body_constraint_that_removes_every_listing_is_a_503_naming_it(
    market, client, provider, headers, constraints
):
    buyer = await sync_to_async(buyer_make)()
    await _two_listings()
    response = await client.post(
        "/v1/chat/completions",
        headers={"Authorization": f"Bearer {buyer.key}", **headers},
        json={"model": MODEL, "messages": HELLO, "provider": provider},
    )
    assert response.status_code == 503
    assert response.json()["error"]["constraints"] == constraints
    assert market.app.stats()["keys"] == {}
    assert await sync_to_async(Hold.objects.filter(user=buyer.user).count)() == 0


async def test_without_fallbacks_only_the_first_listing_is_tried(market, client):
    buyer = await sync_to_async(buyer_make)()
    await sync_to_async(
        lambda: listing_make(seller_make(), key="sim-nf-a?status=500", percent=50)
    )()
    await sync_to_async(lambda: listing_make(seller_make(), key="sim-nf-b", percent=90))()
    body = {"model": MODEL, "messages": HELLO, "provider": {"allow_fallbacks": False}}
    auth = {"Authorization": f"Bearer {buyer.key}"}
    response = await client.post("/v1/chat/completions", headers=auth, json=body)
    assert response.status_code == 502
    assert list(market.app.stats()["keys"]) == ["sim-nf-a"]
    assert await sync_to_async(Hold.objects.filter(user=buyer.user, status="active").count)() == 0
    # With fallbacks (the default), the second listing answers.
    body["provider"] = {"allow_fallbacks": True}
    response = await client.post("/v1/chat/completions", headers=auth, json=body)
    assert response.status_code == 200
    assert market.app.stats()["keys"]["sim-nf-b"]["requests"] == 1


async def test_messages_takes_the_provider_object_too(market, client):
    buyer = await sync_to_async(buyer_make)()
    _a, b = await _two_listings()
    response = await client.post(
        "/v1/messages",
        headers={"x-api-key": buyer.key, "anthropic-version": "2023-06-01"},
        json={
            "model": MODEL,
            "max_tokens": 50,
            "messages": HELLO,
            "provider": {"sort": "latency"},
        },
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-df-market-listing-id"] == str(b.pk)
    assert "provider" not in _sent(market, "sim-pr-b")


@pytest.mark.parametrize(
    "provider",
    [
        "deepseek",
        {"order": "deepseek"},
        {"only": [1, 2]},
        {"allow_fallbacks": "no"},
        {"max_price": {"prompt": -0.5}},
        {"max_price": {"prompt": True}},
        {"max_price": {"completion": 1e308}},
        {"sort": "fastest"},
        {"data_collection": False},
        {"order": ["deepseek"] * 1000},
        {"unknown": 1},
    ],
)
async def test_a_malformed_provider_object_is_a_400_with_no_hold_and_no_upstream_call(
    market, client, provider
):
    buyer = await sync_to_async(buyer_make)()
    await _two_listings()
    response = await client.post(
        "/v1/chat/completions",
        headers={"Authorization": f"Bearer {buyer.key}"},
        json={"model": MODEL, "messages": HELLO, "provider": provider},
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "bad_request"
    assert "'provider" in error["message"]
    assert market.app.stats()["keys"] == {}
    assert await sync_to_async(Hold.objects.filter(user=buyer.user).count)() == 0


async def test_the_one_listing_allowed_at_capacity_is_a_503_counting_the_ones_set_aside(
    market, client
):
    buyer = await sync_to_async(buyer_make)()
    first = await sync_to_async(
        lambda: listing_make(seller_make(), key="sim-nf-cap", percent=50, requests_per_minute=1)
    )()
    await sync_to_async(lambda: listing_make(seller_make(), key="sim-nf-other", percent=90))()
    auth = {"Authorization": f"Bearer {buyer.key}"}
    body = {"model": MODEL, "messages": HELLO, "provider": {"allow_fallbacks": False}}
    response = await client.post("/v1/chat/completions", headers=auth, json=body)
    assert response.headers["x-df-market-listing-id"] == str(first.pk)
    response = await client.post("/v1/chat/completions", headers=auth, json=body)
    assert response.status_code == 503
    assert response.json()["error"]["constraints"] == {"capacity": 1, "allow_fallbacks": 1}
    assert "sim-nf-other" not in market.app.stats()["keys"]
    await billing_calls.end_leases()  # the 503 gave back its draw: its lease ends with nothing
    assert await sync_to_async(Hold.objects.filter(user=buyer.user, status="active").count)() == 0
    # With fallbacks, the other listing serves.
    response = await client.post(
        "/v1/chat/completions", headers=auth, json={"model": MODEL, "messages": HELLO}
    )
    assert response.status_code == 200
    assert market.app.stats()["keys"]["sim-nf-other"]["requests"] == 1
