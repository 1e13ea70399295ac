"""usage.cost and X-DF-Cost through the real server, read with the official SDKs: each answer's
figure equals, in nano-USD, the buyer's settled debit (UsageRecord.buyer_debit_nusd) for its
request id: plain, streamed, cut mid-stream and failed-over chat in both wire shapes, a max_tokens
cap, embeddings, rerank and speech (docs/gateway.md, "Cost of an answer")."""

import json
from decimal import Decimal

import anthropic
import httpx
import openai
import pytest

from billing.money import cost_nusd, usd_to_nusd

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
MODEL = "deepseek/deepseek-chat"
HELLO = [{"role": "user", "content": "Hello!"}]
WITH_USAGE = {"include_usage": True}


def _nusd(cost: object) -> int:
    """A cost as an SDK parsed it (a JSON number of dollars) → exact nano-USD; usd_to_nusd
    refuses anything with more than 9 decimals."""
    assert isinstance(cost, int | float) and not isinstance(cost, bool), cost
    return usd_to_nusd(repr(cost))


def _exact(text: str, *path: str) -> int:
    """The cost in a JSON body, read as the exact decimal it was written as."""
    value = json.loads(text, parse_float=Decimal)
    for name in path:
        value = value[name]
    return usd_to_nusd(value if isinstance(value, Decimal) else str(value))


def _settled(world, request_id: str):
    record = world.usage(request_id)
    assert record is not None, request_id
    return record


def _priced(record) -> int:
    """The record's units at its asks, by the one rounding rule (an independent check that the
    usage shown is the usage billed)."""
    return cost_nusd(units=record.input_units, price_per_million_nusd=record.ask_input_nusd) + (
        cost_nusd(units=record.output_units, price_per_million_nusd=record.ask_output_nusd)
    )


def test_a_plain_completion_carries_its_settled_debit_in_usage_cost_and_x_df_cost(world):
    buyer = world.buyer()
    world.listing(key="sim-e2e-cost")
    world.routable(MODEL, 1)
    raw = world.client(buyer.key).chat.completions.with_raw_response.create(
        model=MODEL, messages=HELLO, max_tokens=50
    )
    chat = raw.parse()
    record = _settled(world, raw.headers["x-df-market-request-id"])
    cost = _nusd(chat.usage.cost)
    assert cost == _exact(raw.http_response.text, "usage", "cost")
    assert cost == usd_to_nusd(raw.headers["x-df-cost"])
    assert cost == record.buyer_debit_nusd == record.cost_nusd == _priced(record) > 0
    assert (chat.usage.prompt_tokens, chat.usage.completion_tokens) == (
        record.input_units,
        record.output_units,
    )
    print("\nusage", raw.http_response.json()["usage"], "x-df-cost", raw.headers["x-df-cost"])


def test_a_plain_message_carries_it_in_anthropics_usage_and_x_df_cost(world):
    buyer = world.buyer()
    world.listing(key="sim-e2e-cost-msg")
    world.routable(MODEL, 1)
    raw = world.anthropic(buyer.key).messages.with_raw_response.create(
        model=MODEL, max_tokens=50, messages=HELLO
    )
    message = raw.parse()
    record = _settled(world, raw.headers["x-df-market-request-id"])
    cost = _nusd(message.usage.cost)
    assert cost == _exact(raw.http_response.text, "usage", "cost")
    assert cost == usd_to_nusd(raw.headers["x-df-cost"])
    assert cost == record.buyer_debit_nusd == _priced(record) > 0
    assert (message.usage.input_tokens, message.usage.output_tokens) == (
        record.input_units,
        record.output_units,
    )


def test_a_stream_carries_it_in_its_final_usage_chunk(world):
    buyer = world.buyer()
    world.listing(key="sim-e2e-cost-stream?tokens=8")
    world.routable(MODEL, 1)
    stream = world.client(buyer.key).chat.completions.create(
        model=MODEL, messages=HELLO, stream=True, stream_options=WITH_USAGE
    )
    chunks = list(stream)
    assert "x-df-cost" not in stream.response.headers  # the headers went out before the cost
    record = _settled(world, stream.response.headers["x-df-market-request-id"])
    last = chunks[-1]
    assert last.choices == [] and all(c.usage is None for c in chunks[:-1])
    assert last.model == MODEL
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (2, 8)
    assert _nusd(last.usage.cost) == record.buyer_debit_nusd == _priced(record) > 0


def test_an_anthropic_stream_carries_it_in_the_message_delta_usage(world):
    buyer = world.buyer()
    world.listing(key="sim-e2e-cost-msgstream?tokens=8")
    world.routable(MODEL, 1)
    stream = world.anthropic(buyer.key).messages.create(
        model=MODEL, max_tokens=50, messages=HELLO, stream=True
    )
    events = list(stream)
    record = _settled(world, stream.response.headers["x-df-market-request-id"])
    (delta,) = [event for event in events if event.type == "message_delta"]
    assert delta.delta.stop_reason == "end_turn"
    assert (delta.usage.input_tokens, delta.usage.output_tokens) == (2, 8)
    assert _nusd(delta.usage.cost) == record.buyer_debit_nusd == _priced(record) > 0


def test_a_stream_cut_mid_way_carries_the_cost_of_what_was_delivered_before_its_error(world):
    buyer = world.buyer()
    # Chunks 50 ms apart: the content reaches the buyer before the connection drops.
    world.listing(key="sim-e2e-cost-cut?drop_after=3&tps=20")
    world.routable(MODEL, 1)
    stream = world.client(buyer.key).chat.completions.create(
        model=MODEL, messages=HELLO, stream=True, stream_options=WITH_USAGE
    )
    chunks = []
    with pytest.raises(openai.APIError, match="failed mid-stream"):
        for chunk in stream:
            chunks.append(chunk)
    record = _settled(world, stream.response.headers["x-df-market-request-id"])
    assert (record.outcome, record.output_units) == ("upstream_failed", 3)
    usage = chunks[-1].usage
    assert usage.completion_tokens == 3  # no usage from the upstream: the chunks delivered
    assert _nusd(usage.cost) == record.buyer_debit_nusd == _priced(record) > 0


def test_an_anthropic_stream_cut_mid_way_carries_it_in_a_message_delta_before_the_error(world):
    buyer = world.buyer()
    world.listing(key="sim-e2e-cost-msgcut?drop_after=3&tps=20")
    world.routable(MODEL, 1)
    stream = world.anthropic(buyer.key).messages.create(
        model=MODEL, max_tokens=50, messages=HELLO, stream=True
    )
    events = []
    with pytest.raises(anthropic.APIError, match="failed mid-stream"):
        for event in stream:
            events.append(event)
    record = _settled(world, stream.response.headers["x-df-market-request-id"])
    assert (record.outcome, record.output_units) == ("upstream_failed", 3)
    delta = events[-1]
    assert (delta.type, delta.delta.stop_reason, delta.usage.output_tokens) == (
        "message_delta",
        None,
        3,
    )
    assert _nusd(delta.usage.cost) == record.buyer_debit_nusd == _priced(record) > 0


@pytest.mark.parametrize("stream", [False, True])
def test_a_failed_over_request_carries_the_debit_at_the_listing_that_served(world, stream):
    buyer = world.buyer()
    world.listing(key="sim-e2e-cost-broken?status=500", percent=50)  # cheaper: tried first
    good = world.listing(key="sim-e2e-cost-good", percent=90)
    world.routable(MODEL, 2)
    client = world.client(buyer.key)
    if stream:
        answer = client.chat.completions.create(
            model=MODEL, messages=HELLO, stream=True, stream_options=WITH_USAGE
        )
        cost = _nusd(list(answer)[-1].usage.cost)
        headers = answer.response.headers
    else:
        raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=HELLO)
        cost = _nusd(raw.parse().usage.cost)
        headers = raw.headers
        assert usd_to_nusd(headers["x-df-cost"]) == cost
    assert world.sim.app.stats()["keys"]["sim-e2e-cost-broken"]["requests"] == 1
    assert headers["x-df-market-listing-id"] == str(good.pk)
    record = _settled(world, headers["x-df-market-request-id"])
    assert record.listing_id == good.pk
    assert cost == record.buyer_debit_nusd == _priced(record) > 0


def test_an_answer_run_to_its_max_tokens_cap_carries_the_upstreams_count_at_the_cap(world):
    buyer = world.buyer()
    world.listing(key="sim-e2e-cost-greedy?greedy=1")  # writes to max_tokens, counts generously
    world.routable(MODEL, 1)
    raw = world.client(buyer.key).chat.completions.with_raw_response.create(
        model=MODEL, messages=HELLO, max_tokens=40
    )
    chat = raw.parse()
    assert chat.usage.completion_tokens == 40
    record = _settled(world, raw.headers["x-df-market-request-id"])
    assert record.input_units == chat.usage.prompt_tokens > 2  # the upstream's count, not ours
    assert _nusd(chat.usage.cost) == usd_to_nusd(raw.headers["x-df-cost"])
    assert _nusd(chat.usage.cost) == record.buyer_debit_nusd == _priced(record) > 0


def test_embeddings_carry_it_in_usage_and_x_df_cost(world):
    buyer = world.buyer()
    world.listing(key="sim-e2e-cost-embed", provider="minimax", models=("minimax/embo-01",))
    world.routable("minimax/embo-01", 1)
    raw = world.client(buyer.key).embeddings.with_raw_response.create(
        model="minimax/embo-01", input=["The food was delicious", "and the waiter"]
    )
    record = _settled(world, raw.headers["x-df-market-request-id"])
    cost = _nusd(raw.parse().usage.cost)
    assert cost == _exact(raw.http_response.text, "usage", "cost")
    assert cost == usd_to_nusd(raw.headers["x-df-cost"])
    assert cost == record.buyer_debit_nusd == _priced(record) > 0


def test_rerank_carries_it_in_usage_and_x_df_cost(world):
    model = "jina/jina-reranker-v2-base-multilingual"
    buyer = world.buyer()
    world.listing(key="sim-e2e-cost-rerank", provider="jina", models=(model,))
    world.routable(model, 1)
    response = httpx.post(
        world.base + "/rerank",
        json={"model": model, "query": "capital", "documents": ["Paris", "a capital letter"]},
        headers={"Authorization": f"Bearer {buyer.key}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    record = _settled(world, response.headers["x-df-market-request-id"])
    cost = _exact(response.text, "usage", "cost")
    assert cost == usd_to_nusd(response.headers["x-df-cost"])
    assert cost == record.buyer_debit_nusd == _priced(record) > 0


def test_speech_carries_it_in_x_df_cost(world):
    model = "minimax/speech-02-hd"
    buyer = world.buyer()
    world.listing(key="sim-e2e-cost-tts", provider="minimax", models=(model,))
    world.routable(model, 1)
    raw = world.client(buyer.key).audio.speech.with_raw_response.create(
        model=model, input="Hello world", voice="alloy"
    )
    record = _settled(world, raw.headers["x-df-market-request-id"])
    assert record.input_units == 11
    assert usd_to_nusd(raw.headers["x-df-cost"]) == record.buyer_debit_nusd == _priced(record) > 0
