"""Every parameter of the seed's chat table validated and passed through; unknown fields too."""

import pytest
from asgiref.sync import sync_to_async

from billing.models import Hold
from tests.gateway.factories import buyer_make
from tests.market.factories import listing_make, seller_make

pytestmark = pytest.mark.django_db(transaction=True)
MODEL = "deepseek/deepseek-chat"
HELLO = [{"role": "user", "content": "Hello!"}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


def _auth(buyer):
    return {"Authorization": f"Bearer {buyer.key}"}


async def test_every_seed_parameter_and_unknown_fields_reach_the_upstream_unchanged(market, client):
    buyer = await sync_to_async(buyer_make)()
    await sync_to_async(lambda: listing_make(seller_make(), key="sim-params"))()
    sent = {
        "model": MODEL,
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": [{"type": "text", "text": "What is 2+2?"}]},
        ],
        "temperature": 0.7,
        "top_p": 0.9,
        "max_tokens": 64,
        "stream": False,
        "stop": ["\n\n", "END"],
        "frequency_penalty": -1.5,
        "presence_penalty": 2,
        "tools": TOOLS,
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "seed": 7,
        "user": "buyer-123",
        "response_format": {"type": "text"},
        "vendor_extension": {"nested": [1, 2, {"x": None}]},
    }
    response = await client.post("/v1/chat/completions", headers=_auth(buyer), json=sent)
    assert response.status_code == 200, response.text
    upstream = market.app.stats()["keys"]["sim-params"]["last_body"]
    # The catalogue's fields for the model are added (market/catalogue.py: thinking mode off).
    assert upstream == {**sent, "model": "deepseek-v4-flash", "thinking": {"type": "disabled"}}


async def test_a_stream_asks_the_upstream_for_usage_and_keeps_the_buyers_stream_options(
    market, client
):
    buyer = await sync_to_async(buyer_make)()
    await sync_to_async(lambda: listing_make(seller_make(), key="sim-params-stream?tokens=4"))()
    response = await client.post(
        "/v1/chat/completions",
        headers=_auth(buyer),
        json={
            "model": MODEL,
            "messages": HELLO,
            "stream": True,
            "stream_options": {"include_usage": False, "extra": 1},
        },
    )
    assert response.status_code == 200
    upstream = market.app.stats()["keys"]["sim-params-stream"]["last_body"]
    assert upstream["stream"] is True
    assert upstream["stream_options"] == {"include_usage": True, "extra": 1}
    assert '"usage"' not in response.text  # the buyer said no


async def test_the_catalogues_thinking_mode_makes_one_upstream_model_chat_or_reasoner(
    market, client
):
    """deepseek-chat and deepseek-reasoner are both DeepSeek's deepseek-v4-flash now: the
    catalogue's upstream_params turn thinking off or on, over whatever the buyer sent."""
    buyer = await sync_to_async(buyer_make)()
    await sync_to_async(
        lambda: listing_make(
            seller_make(),
            key="sim-thinking",
            models=("deepseek/deepseek-chat", "deepseek/deepseek-reasoner"),
        )
    )()
    seen = {}
    for model in ("deepseek/deepseek-chat", "deepseek/deepseek-reasoner"):
        response = await client.post(
            "/v1/chat/completions",
            headers=_auth(buyer),
            json={"model": model, "messages": HELLO, "thinking": {"type": "buyer's choice"}},
        )
        assert response.status_code == 200, response.text
        assert response.json()["model"] == model
        assert response.headers["x-df-upstream-model"] == "deepseek-v4-flash"
        upstream = market.app.stats()["keys"]["sim-thinking"]["last_body"]
        seen[model] = (upstream["model"], upstream["thinking"])
    assert seen == {
        "deepseek/deepseek-chat": ("deepseek-v4-flash", {"type": "disabled"}),
        "deepseek/deepseek-reasoner": ("deepseek-v4-flash", {"type": "enabled"}),
    }


BAD = [
    ({"model": 5, "messages": HELLO}, "'model' is required and must be a non-empty string"),
    ({"model": "  ", "messages": HELLO}, "'model' is required and must be a non-empty string"),
    ({"model": MODEL}, "'messages' is required"),
    ({"model": MODEL, "messages": "Hello"}, "'messages' is required"),
    ({"model": MODEL, "messages": ["Hello"]}, "'messages[0]' must be an object"),
    ({"model": MODEL, "messages": [{"role": "user"}]}, "'messages[0].content' is required."),
    (
        {"model": MODEL, "messages": [{"role": "user", "content": 5}]},
        "'messages[0].content' must be a string, an array of parts, or null.",
    ),
    ({"model": MODEL, "messages": HELLO, "temperature": True}, "'temperature' must be a number"),
    ({"model": MODEL, "messages": HELLO, "temperature": "0.5"}, "'temperature' must be a number"),
    ({"model": MODEL, "messages": HELLO, "temperature": 2.01}, "'temperature' must be a number"),
    ({"model": MODEL, "messages": HELLO, "top_p": 1.5}, "'top_p' must be a number between 0 and 1"),
    ({"model": MODEL, "messages": HELLO, "max_tokens": 1.5}, "'max_tokens' must be a positive"),
    ({"model": MODEL, "messages": HELLO, "max_tokens": "10"}, "'max_tokens' must be a positive"),
    ({"model": MODEL, "messages": HELLO, "max_tokens": -1}, "'max_tokens' must be a positive"),
    ({"model": MODEL, "messages": HELLO, "stream": 1}, "'stream' must be a boolean."),
    ({"model": MODEL, "messages": HELLO, "stop": 5}, "'stop' must be a string or an array"),
    ({"model": MODEL, "messages": HELLO, "stop": [1]}, "'stop' must be a string or an array"),
    (
        {"model": MODEL, "messages": HELLO, "frequency_penalty": -2.5},
        "'frequency_penalty' must be a number between -2 and 2.",
    ),
    (
        {"model": MODEL, "messages": HELLO, "presence_penalty": None, "frequency_penalty": []},
        "'frequency_penalty' must be a number between -2 and 2.",
    ),
    ({"model": MODEL, "messages": HELLO, "tools": {}}, "'tools' must be an array"),
    (
        {"model": MODEL, "messages": HELLO, "tools": [{"type": "retrieval"}]},
        "'tools[0].type' must be 'function'.",
    ),
    (
        {
            "model": MODEL,
            "messages": HELLO,
            "tools": [{"type": "function", "function": {"name": "f", "parameters": []}}],
        },
        "'tools[0].function.parameters' must be a JSON Schema object.",
    ),
    ({"model": MODEL, "messages": HELLO, "tool_choice": 1}, "'tool_choice' must be a string"),
    (
        {
            "model": MODEL,
            "messages": HELLO,
            "tools": TOOLS,
            "tool_choice": {"type": "function", "function": {"name": "other"}},
        },
        "'tool_choice' names 'other', which is not in 'tools'.",
    ),
    (
        {"model": MODEL, "messages": HELLO, "stream": True, "stream_options": "usage"},
        "'stream_options' must be an object.",
    ),
]


@pytest.mark.parametrize(("body", "message"), BAD)
async def test_a_wrong_parameter_is_a_400_naming_it_with_no_hold_and_no_upstream_call(
    market, client, body, message
):
    buyer = await sync_to_async(buyer_make)()
    await sync_to_async(lambda: listing_make(seller_make(), key="sim-params-bad"))()
    response = await client.post("/v1/chat/completions", headers=_auth(buyer), json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert set(error) == {"message", "type", "code"}
    assert (error["type"], error["code"]) == ("bad_request", 400)
    assert error["message"].startswith(message), error["message"]
    assert market.app.stats()["keys"] == {}
    assert await sync_to_async(Hold.objects.filter(user=buyer.user).count)() == 0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "Request body is empty; send a JSON object."),
        (b"[1, 2]", "Request body must be a JSON object."),
        (b'{"model": "x",', "Request body is not valid JSON."),
        (b"\xff\xfe", "Request body is not valid JSON."),
    ],
)
async def test_a_body_that_is_not_a_json_object_is_a_400(market, client, content, message):
    buyer = await sync_to_async(buyer_make)()
    response = await client.post("/v1/chat/completions", headers=_auth(buyer), content=content)
    assert response.status_code == 400
    assert response.json() == {"error": {"message": message, "type": "bad_request", "code": 400}}
