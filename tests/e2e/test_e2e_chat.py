"""The real server driven by the official openai SDK: models, completions, streams, tools."""

import httpx
import orjson
import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
MODEL = "deepseek/deepseek-chat"


def test_the_sdk_gets_a_completion_with_every_diagnostics_header(world):
    buyer = world.buyer()
    listing = world.listing(key="sim-e2e-plain")
    world.routable(MODEL, 1)
    raw = world.client(buyer.key).chat.completions.with_raw_response.create(
        model=MODEL,
        messages=[{"role": "user", "content": "What is 2+2?"}],
        temperature=0.7,
        max_tokens=50,
    )
    completion = raw.parse()
    assert completion.model == MODEL
    assert completion.choices[0].message.content
    assert raw.headers["x-df-market-route"] == "seller"
    assert raw.headers["x-df-market-provider"] == "deepseek"
    assert raw.headers["x-df-market-listing-id"] == str(listing.pk)
    assert raw.headers["x-df-upstream-model"] == "deepseek-v4-flash"
    assert raw.headers["x-df-market-ask-input"] == "0.4"
    assert raw.headers["x-df-market-ask-output"] == "1.2"
    assert raw.headers["x-df-market-fee-profile-id"].isdigit()
    request_id = raw.headers["x-df-market-request-id"]
    record = world.usage(request_id)
    assert record.output_units == completion.usage.completion_tokens
    assert record.input_units == completion.usage.prompt_tokens


def test_the_curl_request_of_the_seed_works_as_plain_http(world):
    buyer = world.buyer()
    world.listing(key="sim-e2e-curl")
    world.routable(MODEL, 1)
    response = httpx.post(
        world.base + "/chat/completions",
        headers={"Authorization": f"Bearer {buyer.key}", "Content-Type": "application/json"},
        content=b'{"model": "deepseek/deepseek-chat", "messages": [{"role": "user", "content": "Hello!"}]}',
    )
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["model"] == MODEL
    assert set(body["usage"]) >= {"prompt_tokens", "completion_tokens", "total_tokens"}
    assert response.headers["x-ratelimit-limit-requests"] == "unlimited"


def test_a_stream_arrives_in_chunks_with_usage_only_when_asked(world):
    buyer = world.buyer()
    world.listing(key="sim-e2e-stream?tokens=8")
    world.routable(MODEL, 1)
    client = world.client(buyer.key)
    chunks = list(
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Stream me"}], stream=True
        )
    )
    assert all(chunk.model == MODEL for chunk in chunks)
    assert [c.usage for c in chunks if c.usage] == []
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(text.split()) == 8
    upstream = world.sim.app.stats()["keys"]["sim-e2e-stream"]["last_body"]
    assert upstream["stream_options"] == {"include_usage": True}

    with_usage = list(
        client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "Stream me"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert with_usage[-1].choices == []
    assert with_usage[-1].usage.completion_tokens == 8


def test_a_tool_call_round_trip_keeps_the_call_id(world):
    buyer = world.buyer()
    world.listing(key="sim-e2e-tools")
    world.routable(MODEL, 1)
    client = world.client(buyer.key)
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            },
        }
    ]
    messages = [{"role": "user", "content": "Use get_weather for Paris"}]
    first = client.chat.completions.create(model=MODEL, messages=messages, tools=tools)
    call = first.choices[0].message.tool_calls[0]
    assert first.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather"
    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
    ]
    second = client.chat.completions.create(model=MODEL, messages=messages, tools=tools)
    assert second.choices[0].message.content == "The tool returned: sunny"
    upstream = world.sim.app.stats()["keys"]["sim-e2e-tools"]["last_body"]
    assert upstream["messages"][1]["tool_calls"][0]["id"] == call.id
    assert upstream["messages"][2]["tool_call_id"] == call.id


def test_models_lists_live_models_with_prices_per_thousand(world):
    world.listing(key="sim-e2e-models")
    world.routable(MODEL, 1)
    listing = httpx.get(world.base + "/models").json()
    assert listing["object"] == "list"
    ids = [m["id"] for m in listing["data"]]
    assert ids == [MODEL]
    entry = listing["data"][0]
    assert entry["owned_by"] == "deepseek"
    assert entry["pricing"] == {"input": 0.0005, "output": 0.0015}
    assert entry["market_ask"] == {"input": 0.0004, "output": 0.0012}
    assert entry["context_length"] == 128000
    assert entry["modality"] == "chat"
    everything = httpx.get(world.base + "/models?all=true").json()
    assert "minimax/speech-02-hd" in [m["id"] for m in everything["data"]]
    assert orjson.loads(httpx.get(world.base + f"/models/{MODEL}").content)["id"] == MODEL
