"""X-Max-Cost through the real pipeline: the output cap lowered to fit when the buyer set none, a
400 naming both numbers (nothing held, no upstream call) otherwise, and the charge, settled for
real against an upstream that bills every token it may (the simulator's greedy mode), never above
the max."""

import random

import orjson
import pytest
from asgiref.sync import sync_to_async

from billing.models import Hold, UsageRecord
from billing.money import cost_nusd, format_usd
from gateway import billing_calls, metering
from market.health_record import health_report
from tests.gateway.factories import buyer_make
from tests.market.factories import listing_make, seller_make

pytestmark = pytest.mark.django_db(transaction=True)
MODEL = "deepseek/deepseek-chat"
HELLO = [{"role": "user", "content": "Hello!"}]
USD = 1_000_000_000


def _auth(buyer, max_cost: str | None = None) -> dict:
    headers = {"Authorization": f"Bearer {buyer.key}"}
    if max_cost is not None:
        headers["X-Max-Cost"] = max_cost
    return headers


def _greedy(key: str, ask_input="0.5", ask_output="1", **kwargs):
    return listing_make(
        seller_make(), key=f"{key}?greedy=1", ask_input=ask_input, ask_output=ask_output, **kwargs
    )


async def _record(response) -> UsageRecord:
    return await sync_to_async(UsageRecord.objects.get)(
        request_id=response.headers["x-df-market-request-id"]
    )


async def test_without_max_tokens_the_cap_sent_upstream_is_lowered_to_fit(market, client):
    buyer = await sync_to_async(buyer_make)()
    await sync_to_async(_greedy)("sim-mc-fit")
    body = {"model": MODEL, "messages": HELLO}
    response = await client.post("/v1/chat/completions", headers=_auth(buyer, "0.001"), json=body)
    assert response.status_code == 200, response.text
    prompt_bound = len(orjson.dumps(body)) + metering.TEMPLATE_TOKENS
    # $0.5/M in, $1/M out: what is left of $0.001 after the prompt, at 1,000 nano-USD a token.
    cap = (USD // 1000 - cost_nusd(units=prompt_bound, price_per_million_nusd=USD // 2)) // 1000
    sent = orjson.loads(market.app.registry.stats["sim-mc-fit"].last_body)
    assert sent["max_tokens"] == cap
    assert response.json()["usage"]["completion_tokens"] == cap  # greedy writes to the cap
    hold = await sync_to_async(Hold.objects.get)(
        request_id=response.headers["x-df-market-request-id"]
    )
    assert hold.amount_nusd <= USD // 1000
    record = await _record(response)
    assert record.buyer_debit_nusd <= USD // 1000
    assert record.overrun_nusd == 0


async def test_with_max_tokens_above_the_max_it_is_a_400_naming_both_numbers(market, client):
    buyer = await sync_to_async(buyer_make)()
    await sync_to_async(_greedy)("sim-mc-capped")
    body = {"model": MODEL, "messages": HELLO, "max_tokens": 1000}
    response = await client.post("/v1/chat/completions", headers=_auth(buyer, "0.001"), json=body)
    assert response.status_code == 400
    prompt_bound = len(orjson.dumps(body)) + metering.TEMPLATE_TOKENS
    worst = cost_nusd(units=prompt_bound, price_per_million_nusd=USD // 2) + 1000 * 1000
    assert response.json()["error"] == {
        "message": f"This request may cost up to {format_usd(worst)}"
        " (its worst case at the cheapest eligible listing), more than X-Max-Cost $0.001: "
        "lower max_tokens or shorten the input, or raise X-Max-Cost.",
        "type": "bad_request",
        "code": 400,
    }
    assert market.app.stats()["keys"] == {}
    assert await sync_to_async(Hold.objects.filter(user=buyer.user).count)() == 0
    # Within the max, the buyer's cap is kept as it is.
    body["max_tokens"] = 100
    response = await client.post("/v1/chat/completions", headers=_auth(buyer, "0.001"), json=body)
    assert response.status_code == 200
    assert orjson.loads(market.app.registry.stats["sim-mc-capped"].last_body)["max_tokens"] == 100


async def test_messages_always_sets_max_tokens_so_it_is_refused_not_lowered(market, client):
    buyer = await sync_to_async(buyer_make)()
    await sync_to_async(_greedy)("sim-mc-msg")
    response = await client.post(
        "/v1/messages",
        headers={"x-api-key": buyer.key, "X-Max-Cost": "0.001"},
        json={"model": MODEL, "max_tokens": 4096, "messages": HELLO},
    )
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert "more than X-Max-Cost $0.001: lower max_tokens" in response.json()["error"]["message"]
    assert market.app.stats()["keys"] == {}


async def test_a_listing_that_cannot_fit_is_set_aside_for_one_that_can(market, client):
    buyer = await sync_to_async(buyer_make)()
    dear = await sync_to_async(_greedy)("sim-mc-dear", ask_input="0.5", ask_output="1.5")
    cheap = await sync_to_async(_greedy)("sim-mc-cheap", ask_input="0.05", ask_output="0.1")
    for listing, ttft in ((dear, 100), (cheap, 900)):  # the buyer's sort ranks the dear one first
        await sync_to_async(health_report)(
            listing_id=listing.pk,
            ok=True,
            status_code=200,
            ttft_ms=ttft,
            tokens_per_second=50,
            passive=False,
        )
    # A prompt of about 420 tokens: $0.00021 at the dear listing alone, above the $0.0001 max.
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "x" * 400}],
        "provider": {"sort": "latency"},
    }
    response = await client.post("/v1/chat/completions", headers=_auth(buyer, "0.0001"), json=body)
    assert response.status_code == 200, response.text
    assert response.headers["x-df-market-listing-id"] == str(cheap.pk)
    assert list(market.app.stats()["keys"]) == ["sim-mc-cheap"]
    # Without the max, the buyer's sort picks the dear one.
    response = await client.post("/v1/chat/completions", headers=_auth(buyer), json=body)
    assert response.headers["x-df-market-listing-id"] == str(dear.pk)


async def test_speech_over_the_max_is_refused(market, client):
    buyer = await sync_to_async(buyer_make)()
    await sync_to_async(
        lambda: listing_make(
            seller_make(), key="sim-mc-tts", provider="minimax", models=("minimax/speech-02-hd",)
        )
    )()
    body = {"model": "minimax/speech-02-hd", "input": "Hello " * 500}
    response = await client.post("/v1/audio/speech", headers=_auth(buyer, "0.0001"), json=body)
    assert response.status_code == 400
    assert "shorten the input, or raise X-Max-Cost." in response.json()["error"]["message"]
    assert market.app.stats()["keys"] == {}
    response = await client.post("/v1/audio/speech", headers=_auth(buyer, "1"), json=body)
    assert response.status_code == 200


@pytest.mark.parametrize("raw", ["-1", "abc", "1e99999", "0.0000000001", "nan"])
async def test_a_malformed_max_cost_is_a_400_naming_the_header(market, client, raw):
    buyer = await sync_to_async(buyer_make)()
    await sync_to_async(_greedy)("sim-mc-bad")
    response = await client.post(
        "/v1/chat/completions",
        headers=_auth(buyer, raw),
        json={"model": MODEL, "messages": HELLO},
    )
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith("Header X-Max-Cost ")
    assert market.app.stats()["keys"] == {}
    assert await sync_to_async(Hold.objects.filter(user=buyer.user).count)() == 0


async def test_the_charge_never_exceeds_the_max_for_random_prompts_caps_and_maxima(market, client):
    buyer = await sync_to_async(buyer_make)(credit_usd="100")
    await sync_to_async(_greedy)("sim-mc-random", ask_input="0.27", ask_output="1.1")
    await sync_to_async(_greedy)("sim-mc-random2", ask_input="0.31", ask_output="0.9")
    rng = random.Random(1818)
    served = refused = 0
    for _ in range(40):
        text = "".join(rng.choice("ab 市场🐉\n") for _ in range(rng.randint(1, 3000)))
        body: dict = {"model": MODEL, "messages": [{"role": "user", "content": text}]}
        if rng.random() < 0.5:
            body["max_tokens"] = rng.randint(1, 4000)
        if rng.random() < 0.3:
            body["n"] = rng.randint(2, 3)
        limit_nusd = rng.randint(1, 10_000_000)  # up to $0.01
        limit = f"{limit_nusd / USD:.9f}"
        response = await client.post("/v1/chat/completions", headers=_auth(buyer, limit), json=body)
        if response.status_code == 400:
            assert "more than X-Max-Cost" in response.json()["error"]["message"]
            refused += 1
            continue
        assert response.status_code == 200, response.text
        record = await _record(response)
        assert record.cost_nusd <= limit_nusd
        assert record.buyer_debit_nusd <= limit_nusd
        assert record.overrun_nusd == 0
        served += 1
    assert served > 5 and refused > 5  # both ways were exercised
    await billing_calls.end_leases()  # every draw given back: the buyer's leases end empty
    assert await sync_to_async(Hold.objects.filter(user=buyer.user, status="active").count)() == 0
