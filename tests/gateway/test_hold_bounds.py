"""The hold is an upper bound the upstream cannot exceed; buyer-caused upstream errors cost nobody."""

import orjson
import pytest
from asgiref.sync import sync_to_async
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from billing.models import Hold, UsageRecord
from billing.selectors import wallet_summary
from gateway import metering
from simulator.textgen import greedy_prompt_tokens
from tests.gateway.factories import buyer_make
from tests.market.factories import listing_make, seller_make

MODEL = "deepseek/deepseek-chat"
HELLO = [{"role": "user", "content": "Hello!"}]


def _auth(buyer):
    return {"Authorization": f"Bearer {buyer.key}"}


# ---------------------------------------------------------------- the bound itself (no database)


@settings(max_examples=300, deadline=None)
@given(
    texts=st.lists(st.text(max_size=200), min_size=1, max_size=5),
    tool_names=st.lists(st.text(min_size=1, max_size=30), max_size=3),
)
def test_the_prompt_bound_covers_the_most_any_upstream_can_count_in_any_script(texts, tool_names):
    payload = {
        "model": MODEL,
        "messages": [{"role": "user", "content": text} for text in texts],
        "tools": [
            {"type": "function", "function": {"name": name, "description": name * 3}}
            for name in tool_names
        ],
    }
    bound = metering.prompt_token_bound(payload, ())
    assert bound >= greedy_prompt_tokens(payload)
    assert bound >= sum(len(text.encode()) for text in texts)


def test_cjk_and_emoji_are_bounded_by_their_bytes_not_four_characters_a_token():
    text = "市场" * 100 + "🐉" * 100  # 300 characters, 1,000 UTF-8 bytes
    payload = {"model": MODEL, "messages": [{"role": "user", "content": text}]}
    assert metering.prompt_token_bound(payload, ()) > 1_000 > 4 * metering.tokens_from_chars(300)


def test_the_output_cap_is_the_buyers_or_the_default_and_never_above_the_context():
    assert metering.output_cap(None, 128_000) == metering.DEFAULT_OUTPUT_CAP == 8192
    assert metering.output_cap(50, 128_000) == 50
    assert metering.output_cap(500_000, 128_000) == 128_000
    assert metering.output_cap(None, None) == 8192


# ---------------------------------------------------------------- through the gateway

money = pytest.mark.django_db(transaction=True)


def _sent(market, key_name: str) -> dict:
    return orjson.loads(market.app.registry.stats[key_name].last_body)


@money
@pytest.mark.parametrize(
    ("extra", "cap"),
    [({}, 8192), ({"max_tokens": 40}, 40), ({"max_completion_tokens": 30, "max_tokens": 90}, 30)],
)
async def test_the_upstream_is_always_sent_the_output_cap_that_was_held(market, client, extra, cap):
    buyer = await sync_to_async(buyer_make)()
    await sync_to_async(lambda: listing_make(seller_make(), key="sim-cap?greedy=1"))()
    response = await client.post(
        "/v1/chat/completions",
        headers=_auth(buyer),
        json={"model": MODEL, "messages": HELLO, **extra},
    )
    assert response.status_code == 200, response.text
    sent = _sent(market, "sim-cap")
    assert sent["max_tokens"] == cap
    assert "max_completion_tokens" not in sent
    assert response.json()["usage"]["completion_tokens"] == cap
    record = await sync_to_async(UsageRecord.objects.get)(
        request_id=response.headers["x-df-market-request-id"]
    )
    assert record.overrun_nusd == 0


@money
async def test_n_choices_multiply_the_output_allowance_of_the_hold(market, client):
    buyer = await sync_to_async(buyer_make)()
    listing = await sync_to_async(
        lambda: listing_make(seller_make(), key="sim-n?greedy=1&ttft_ms=400")
    )()
    offer = await sync_to_async(lambda: listing.offers.get())()
    body = {"model": MODEL, "messages": HELLO, "n": 3, "max_tokens": 100}
    response = await client.post("/v1/chat/completions", headers=_auth(buyer), json=body)
    assert response.status_code == 200, response.text
    hold = await sync_to_async(Hold.objects.get)(
        request_id=response.headers["x-df-market-request-id"]
    )
    prompt_bound = len(orjson.dumps(body)) + metering.TEMPLATE_TOKENS
    assert hold.amount_nusd == metering.worst_case_nusd(
        prompt_tokens=prompt_bound,
        output_tokens=300,
        ask_input_nusd=offer.ask_input_nusd,
        ask_output_nusd=offer.ask_output_nusd,
    )
    record = await sync_to_async(UsageRecord.objects.get)(request_id=hold.request_id)
    assert (record.output_units, record.overrun_nusd) == (300, 0)


@money
async def test_an_image_part_for_a_model_without_vision_is_refused_before_anything_is_held(
    market, client
):
    buyer = await sync_to_async(buyer_make)()
    await sync_to_async(lambda: listing_make(seller_make(), key="sim-image"))()
    content = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
    ]
    response = await client.post(
        "/v1/chat/completions",
        headers=_auth(buyer),
        json={"model": MODEL, "messages": [{"role": "user", "content": content}]},
    )
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert message.startswith("'messages[0].content[1]' is a 'image_url' part")
    assert "sim-image" not in market.app.stats()["keys"]
    assert await sync_to_async(Hold.objects.filter(user=buyer.user).count)() == 0


# ---------------------------------------------------------------- buyer-caused upstream errors


def _attempts(outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "dragonfly_upstream_attempts_total", {"provider": "deepseek", "outcome": outcome}
    )
    return value or 0.0


@money
@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    "knob", ["status=400", "status=413", "status=422", "status=400&base_resp=1"]
)
async def test_an_upstream_calling_the_request_invalid_is_a_400_with_no_failover_and_no_health_cost(
    market, client, knob, stream
):
    from gateway import health_reports
    from market.health import health_get

    buyer = await sync_to_async(buyer_make)()
    first = await sync_to_async(
        lambda: listing_make(seller_make(), key=f"sim-bad?{knob}", percent=50)
    )()
    await sync_to_async(lambda: listing_make(seller_make(), key="sim-other", percent=90))()
    invalid_before = _attempts("invalid_request")
    response = await client.post(
        "/v1/chat/completions",
        headers=_auth(buyer),
        json={"model": MODEL, "messages": HELLO, "stream": stream},
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "bad_request"
    assert error["message"].startswith("The seller's provider refused the request as invalid (")
    stats = market.app.stats()["keys"]
    assert (stats["sim-bad"]["requests"], "sim-other" in stats) == (1, False)
    assert _attempts("invalid_request") == invalid_before + 1
    await health_reports.flush()
    assert (await sync_to_async(health_get)(first.pk)).last_fail_at is None
    assert await sync_to_async(UsageRecord.objects.filter(buyer=buyer.user).count)() == 0
    summary = await sync_to_async(wallet_summary)(user=buyer.user)
    assert (summary["balance_nusd"], summary["held_nusd"]) == (10_000_000_000, 0)
