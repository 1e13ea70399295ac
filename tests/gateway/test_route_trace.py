"""The route a usage record keeps (gateway/route_trace.py): the model name sent, how it resolved,
each listing passed over and why. Unit tests of the codes, then the real pipeline in process
(simulator upstream, PostgreSQL, Redis), then the crash paths: a stream's checkpoint and a
settlement kept in Redis, settled by the reaper, keep the route."""

import dataclasses
from datetime import timedelta

import orjson
import pytest
from asgiref.sync import sync_to_async
from django.test import override_settings
from django.utils import timezone

from billing import services
from billing.models import UsageRecord
from gateway import billing_calls, checkpoints, reaper, route_trace
from gateway.call import Route
from gateway.metering import Meter
from gateway.models import GatewayProcess
from gateway.upstream.base import UpstreamError, status_error
from market.route_candidates import RouteCandidate
from redis_clients.clients import get_redis
from tests.accounts.factories import user_make
from tests.billing.factories import fund
from tests.gateway.factories import buyer_make, drained
from tests.market.factories import listing_make, listing_row_make, seller_make

MODEL = "deepseek/deepseek-chat"
HELLO = [{"role": "user", "content": "Hello!"}]


def _candidate(listing_id: int, *, seller_id: int = 7, provider: str = "deepseek"):
    return RouteCandidate(
        listing_id=listing_id,
        seller_id=seller_id,
        provider_slug=provider,
        wire_format="openai",
        base_url="http://127.0.0.1:9/v1",
        model_id=MODEL,
        upstream_model="deepseek-chat",
        modality="chat",
        price_unit="token",
        ask_input_nusd=400_000_000,
        ask_output_nusd=1_200_000_000,
        trusted=False,
        concurrency_cap=8,
        requests_per_minute=None,
        health="healthy",
        ttft_p50_ms=None,
        tps_p50=None,
        context_tokens=128_000,
    )


@pytest.mark.parametrize(
    ("failure", "code"),
    [
        (status_error(500), "http_500"),
        (status_error(429), "http_429"),
        (status_error(401), "http_401"),
        (status_error(502, reason="MiniMax status 1002"), "http_502"),
        (UpstreamError("timed out waiting for the response"), "timeout"),
        (UpstreamError("no first token in time"), "timeout"),
        (UpstreamError("could not connect"), "connect_error"),
        (UpstreamError("connection failed (ServerDisconnectedError)"), "connect_error"),
        (UpstreamError("seller key unavailable"), "seller_key_unavailable"),
        (UpstreamError("stream broke off"), "bad_response"),
        (UpstreamError("response was not a chat completion"), "bad_response"),
    ],
)
def test_a_failure_is_recorded_as_a_fixed_code(failure, code):
    assert route_trace.reason(failure) == code


def test_the_route_lists_the_listings_passed_over_then_the_one_that_served():
    trace = route_trace.RouteTrace()
    route = Route(prefs=None, session=None, table=None, model={"model_id": MODEL})  # type: ignore[arg-type]
    trace.resolved_from("gpt-4o", dataclasses.replace(route, alias_source="builtin_alias"))
    trace.passed_over(_candidate(1, provider="minimax"), route_trace.AT_CAPACITY)
    trace.passed_over(_candidate(2), "http_503")

    assert trace.as_route(_candidate(3)) == {
        "model": "gpt-4o",
        "model_resolved": MODEL,
        "alias_source": "builtin_alias",
        "attempts": [
            {
                "listing_id": 1,
                "provider": "minimax",
                "outcome": "failed_over",
                "reason": "at_capacity",
            },
            {
                "listing_id": 2,
                "provider": "deepseek",
                "outcome": "failed_over",
                "reason": "http_503",
            },
            {"listing_id": 3, "provider": "deepseek", "outcome": "served", "reason": None},
        ],
    }


def test_a_meter_made_outside_the_pipeline_settles_without_a_route():
    settlement = Meter().settlement(
        "req_x", {"user_id": 1, "key_id": 2}, _candidate(3), outcome="completed", streamed=False
    )
    assert settlement.route is None


# --- the real pipeline, in process ---


async def _post(client, buyer, **body):
    return await client.post(
        "/v1/chat/completions",
        headers={"Authorization": f"Bearer {buyer.key}"},
        json={"model": MODEL, "messages": HELLO, **body},
    )


async def _route_of(response) -> dict:
    await drained()
    request_id = response.headers["x-df-market-request-id"]
    record = await sync_to_async(UsageRecord.objects.get)(request_id=request_id)
    return record.route


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("stream", [False, True])
async def test_a_plain_request_records_one_served_attempt(market, client, stream):
    buyer = await sync_to_async(buyer_make)()
    listing = await sync_to_async(lambda: listing_make(seller_make(), key="sim-rt-ok"))()
    response = await _post(client, buyer, stream=stream)
    assert response.status_code == 200, response.text
    assert await _route_of(response) == {
        "model": MODEL,
        "model_resolved": MODEL,
        "alias_source": None,
        "attempts": [
            {"listing_id": listing.pk, "provider": "deepseek", "outcome": "served", "reason": None}
        ],
    }


@pytest.mark.django_db(transaction=True)
async def test_an_aliased_name_records_the_name_sent_and_how_it_resolved(market, client):
    buyer = await sync_to_async(buyer_make)()
    await sync_to_async(lambda: listing_make(seller_make(), key="sim-rt-alias"))()
    response = await _post(client, buyer, model="gpt-4o")
    assert response.status_code == 200, response.text
    route = await _route_of(response)
    assert (route["model"], route["model_resolved"], route["alias_source"]) == (
        "gpt-4o",
        MODEL,
        "builtin_alias",
    )


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("knob", "code"),
    [("status=503", "http_503"), ("reject=403", "http_403"), ("ttft_ms=3000", "timeout")],
)
async def test_a_failover_records_the_listing_passed_over_and_why(market, client, knob, code):
    buyer = await sync_to_async(buyer_make)()
    broken = await sync_to_async(
        lambda: listing_make(seller_make(), key=f"sim-rt-broken?{knob}", percent=50)
    )()
    good = await sync_to_async(lambda: listing_make(seller_make(), key="sim-rt-good", percent=90))()
    with override_settings(DRAGONFLY_UPSTREAM_FIRST_TOKEN_TIMEOUT=0.5):
        response = await _post(client, buyer, stream=True)
    assert response.status_code == 200, response.text
    assert (await _route_of(response))["attempts"] == [
        {"listing_id": broken.pk, "provider": "deepseek", "outcome": "failed_over", "reason": code},
        {"listing_id": good.pk, "provider": "deepseek", "outcome": "served", "reason": None},
    ]


# --- the crash paths: a checkpoint and a settlement kept in Redis, settled by the reaper ---

DEAD = "deadr0u7"


@pytest.mark.django_db(transaction=True)
def test_a_dead_processs_checkpoint_and_kept_settlement_keep_their_route(settings):
    settings.DRAGONFLY_PROCESS_LEASE_SECONDS = 1800
    buyer, seller = user_make(verified=None), user_make(verified=None)
    listing = listing_row_make(seller=seller)
    fund(buyer, "1")
    seen = timezone.now() - timedelta(seconds=2000)
    GatewayProcess.objects.create(id=DEAD, host="h", pid=1, started_at=seen, heartbeat_at=seen)
    key = {"user_id": buyer.pk, "key_id": None}
    served = dataclasses.replace(_candidate(listing.pk, seller_id=seller.pk), provider_slug="sim")
    routes = {}
    rows = []
    for n, kept in enumerate(("checkpoint", "redis")):
        request_id = f"req_{DEAD}{n:016x}"
        services.hold_place(request_id=request_id, user_id=buyer.pk, amount_nusd=100_000_000)
        meter = Meter(prompt_estimate=10)
        meter.trace = route_trace.RouteTrace(
            requested="gpt-4o", resolved=MODEL, alias_source="builtin_alias"
        )
        meter.trace.passed_over(_candidate(999_000 + n), "http_500")
        meter.content()
        settlement = meter.settlement(
            request_id, key, served, outcome="client_disconnected", streamed=True
        )
        routes[request_id] = settlement.route
        fields = dataclasses.asdict(settlement)  # what checkpoints.collect and _keep serialize
        if kept == "checkpoint":
            rows.append((request_id, fields))
        else:
            get_redis().hset(billing_calls.unsettled_key(DEAD), request_id, orjson.dumps(fields))
    checkpoints.write(DEAD, rows, [], timezone.now())

    reaped = reaper.reap_dead()

    assert reaped.settled == 2
    for request_id, route in routes.items():
        assert route is not None and len(route["attempts"]) == 2
        assert UsageRecord.objects.get(request_id=request_id).route == route
