"""Failover before the first content, in process: errors, timeouts, keep-alives; one listing billed."""

import pytest
from asgiref.sync import sync_to_async
from django.test import override_settings

from billing.models import UsageRecord
from billing.selectors import wallet_summary
from tests.gateway.factories import buyer_make, drained
from tests.market.factories import listing_make, seller_make

pytestmark = pytest.mark.django_db(transaction=True)
MODEL = "deepseek/deepseek-chat"
HELLO = [{"role": "user", "content": "Hello!"}]


def _auth(buyer):
    return {"Authorization": f"Bearer {buyer.key}"}


def _events(text: str) -> list[str]:
    return [line[6:] for line in text.split("\n") if line.startswith("data: ")]


async def _two_listings(broken_key: str):
    broken = await sync_to_async(lambda: listing_make(seller_make(), key=broken_key, percent=50))()
    good = await sync_to_async(lambda: listing_make(seller_make(), key="sim-fo-good", percent=90))()
    return broken, good


async def _assert_only_good_billed(response, buyer, broken, good):
    from market.health import health_get

    assert response.headers["x-df-market-listing-id"] == str(good.pk)
    await drained()
    records = await sync_to_async(lambda: list(UsageRecord.objects.filter(buyer=buyer.user)))()
    assert [(r.listing_id, r.request_id) for r in records] == [
        (good.pk, response.headers["x-df-market-request-id"])
    ]
    assert (await sync_to_async(health_get)(broken.pk)).last_fail_at is not None
    summary = await sync_to_async(wallet_summary)(user=buyer.user)
    assert summary["held_nusd"] == 0
    assert summary["balance_nusd"] == 10_000_000_000 - records[0].buyer_debit_nusd


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("knob", ["status=500", "status=503", "status=429", "reject=403"])
async def test_an_upstream_error_before_content_fails_over(market, client, knob, stream):
    buyer = await sync_to_async(buyer_make)()
    broken, good = await _two_listings(f"sim-fo-broken?{knob}")
    response = await client.post(
        "/v1/chat/completions",
        headers=_auth(buyer),
        json={"model": MODEL, "messages": HELLO, "stream": stream},
    )
    assert response.status_code == 200, response.text
    if stream:
        assert _events(response.text)[-1] == "[DONE]"
        assert "error" not in response.text
    await _assert_only_good_billed(response, buyer, broken, good)


@pytest.mark.parametrize("stream", [False, True])
async def test_no_first_token_within_the_timeout_fails_over(market, client, stream):
    buyer = await sync_to_async(buyer_make)()
    broken, good = await _two_listings("sim-fo-slow?ttft_ms=3000")
    with override_settings(DRAGONFLY_UPSTREAM_FIRST_TOKEN_TIMEOUT=0.5):
        response = await client.post(
            "/v1/chat/completions",
            headers=_auth(buyer),
            json={"model": MODEL, "messages": HELLO, "stream": stream},
        )
    assert response.status_code == 200, response.text
    await _assert_only_good_billed(response, buyer, broken, good)


@pytest.mark.parametrize("stream", [False, True])
async def test_a_connection_dropped_before_any_content_fails_over(market, client, stream):
    """A stream that sends only its role chunk (no content) and hangs up has delivered nothing."""
    buyer = await sync_to_async(buyer_make)()
    broken, good = await _two_listings("sim-fo-drop?drop_after=0")
    response = await client.post(
        "/v1/chat/completions",
        headers=_auth(buyer),
        json={"model": MODEL, "messages": HELLO, "stream": stream},
    )
    assert response.status_code == 200, response.text
    await _assert_only_good_billed(response, buyer, broken, good)


async def test_keepalive_comments_before_the_first_token_are_tolerated(market, client):
    buyer = await sync_to_async(buyer_make)()
    listing = await sync_to_async(
        lambda: listing_make(seller_make(), key="sim-fo-keepalive?keepalive=3&ttft_ms=300&tokens=6")
    )()
    response = await client.post(
        "/v1/chat/completions",
        headers=_auth(buyer),
        json={
            "model": MODEL,
            "messages": HELLO,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )
    assert response.status_code == 200
    assert response.headers["x-df-market-listing-id"] == str(listing.pk)
    assert ": " not in response.text.split("data: ")[0]  # no comment relayed to the buyer
    events = _events(response.text)
    assert events[-1] == "[DONE]"
    assert '"completion_tokens":6' in events[-2]
    await drained()
    record = await sync_to_async(UsageRecord.objects.get)(
        request_id=response.headers["x-df-market-request-id"]
    )
    assert (record.output_units, record.outcome) == (6, "completed")


async def test_a_stream_without_upstream_usage_is_billed_one_token_per_content_chunk(
    market, client
):
    buyer = await sync_to_async(buyer_make)()
    await sync_to_async(
        lambda: listing_make(seller_make(), key="sim-fo-nousage?no_usage=1&tokens=7")
    )()
    response = await client.post(
        "/v1/chat/completions",
        headers=_auth(buyer),
        json={"model": MODEL, "messages": HELLO, "stream": True},
    )
    assert response.status_code == 200
    await drained()
    record = await sync_to_async(UsageRecord.objects.get)(
        request_id=response.headers["x-df-market-request-id"]
    )
    assert (record.input_units, record.output_units) == (2, 7)  # "Hello!" estimated at 2 tokens


async def test_an_unexpected_fault_is_a_500_in_the_seed_shape_and_holds_nothing(
    market, client, monkeypatch
):
    from billing.models import Hold
    from gateway import metering

    buyer = await sync_to_async(buyer_make)()
    await sync_to_async(lambda: listing_make(seller_make(), key="sim-fo-fault"))()

    def broken(*args, **kwargs):
        raise RuntimeError("injected fault")

    monkeypatch.setattr(metering, "output_cap", broken)
    response = await client.post(
        "/v1/chat/completions", headers=_auth(buyer), json={"model": MODEL, "messages": HELLO}
    )
    assert response.status_code == 500
    request_id = response.headers["x-df-market-request-id"]
    assert response.json() == {
        "error": {
            "message": f"Internal error; retry with exponential backoff. (request id {request_id})",
            "type": "internal_error",
            "code": 500,
        }
    }
    assert "injected fault" not in response.text
    assert await sync_to_async(Hold.objects.filter(user=buyer.user).count)() == 0
