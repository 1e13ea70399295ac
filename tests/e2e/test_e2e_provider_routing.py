"""The real server with the official openai SDK: OpenRouter's `provider` object in the body
(extra_body) and X-Max-Cost (extra_headers), with the simulator as the upstream."""

import openai
import orjson
import pytest

from billing.money import cost_nusd
from gateway import metering

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
MODEL = "deepseek/deepseek-chat"
HELLO = [{"role": "user", "content": "Hello!"}]
USD = 1_000_000_000


def _last_body(world, name: str) -> dict:
    return orjson.loads(world.sim.app.registry.stats[name].last_body)


def test_the_provider_object_routes_and_never_reaches_the_upstream(world):
    buyer = world.buyer()
    cheap = world.listing(key="sim-e2e-or-cheap", percent=50)
    trusted = world.listing(key="sim-e2e-or-trusted", percent=90, trusted=True)
    world.routable(MODEL, 2)
    client = world.client(buyer.key)

    raw = client.chat.completions.with_raw_response.create(
        model=MODEL,
        messages=HELLO,
        extra_body={"provider": {"data_collection": "deny", "sort": "price"}},
    )
    assert raw.headers["x-df-market-listing-id"] == str(trusted.pk)
    assert raw.parse().choices[0].message.content
    sent = _last_body(world, "sim-e2e-or-trusted")
    assert "provider" not in sent
    assert sent["messages"] == HELLO

    # A header wins over the body: X-Privacy-Mode any lets the cheap listing serve.
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL,
        messages=HELLO,
        extra_body={"provider": {"data_collection": "deny"}},
        extra_headers={"X-Privacy-Mode": "any"},
    )
    assert raw.headers["x-df-market-listing-id"] == str(cheap.pk)
    assert "provider" not in _last_body(world, "sim-e2e-or-cheap")

    # A stream takes it too.
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL,
        messages=HELLO,
        stream=True,
        extra_body={"provider": {"ignore": [], "only": ["deepseek"], "data_collection": "deny"}},
    )
    assert raw.headers["x-df-market-listing-id"] == str(trusted.pk)
    assert "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    assert "provider" not in _last_body(world, "sim-e2e-or-trusted")

    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model=MODEL, messages=HELLO, extra_body={"provider": {"sort": "fastest"}}
        )
    assert refused.value.body["message"] == (
        "'provider.sort' must be one of price, latency, throughput."
    )

    with pytest.raises(openai.InternalServerError) as unavailable:
        client.chat.completions.create(
            model=MODEL,
            messages=HELLO,
            extra_body={"provider": {"order": ["minimax"], "allow_fallbacks": False}},
        )
    assert unavailable.value.status_code == 503
    assert unavailable.value.body["constraints"] == {"allow_fallbacks": 2}


def test_x_max_cost_lowers_the_output_cap_and_the_charge_stays_under_it(world):
    buyer = world.buyer()
    listing = world.listing(key="sim-e2e-maxcost?greedy=1", ask_input="0.5", ask_output="1")
    world.routable(MODEL, 1)
    client = world.client(buyer.key)

    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=HELLO, extra_headers={"X-Max-Cost": "0.001"}
    )
    assert raw.headers["x-df-market-listing-id"] == str(listing.pk)
    completion = raw.parse()
    body = {"messages": HELLO, "model": MODEL}
    prompt_bound = len(orjson.dumps(body)) + metering.TEMPLATE_TOKENS
    cap = (USD // 1000 - cost_nusd(units=prompt_bound, price_per_million_nusd=USD // 2)) // 1000
    assert _last_body(world, "sim-e2e-maxcost")["max_tokens"] == cap
    assert completion.usage.completion_tokens == cap
    record = world.usage(raw.headers["x-df-market-request-id"])
    assert record.buyer_debit_nusd <= USD // 1000
    assert record.overrun_nusd == 0

    requests_before = world.sim.app.stats()["keys"]["sim-e2e-maxcost"]["requests"]
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model=MODEL, messages=HELLO, max_tokens=2000, extra_headers={"X-Max-Cost": "0.001"}
        )
    message = refused.value.body["message"]
    assert message.startswith("This request may cost up to $0.002058 ")
    assert message.endswith(
        "more than X-Max-Cost $0.001: lower max_tokens or shorten the input, or raise X-Max-Cost."
    )
    assert world.sim.app.stats()["keys"]["sim-e2e-maxcost"]["requests"] == requests_before
