"""No body gets a 500: the nesting cap, the array caps and every wrong type, each a 400 naming it.

The tables run the parsers directly (no database, fast); the tests after them go through the ASGI
application to prove the status and the body shape of each endpoint, and that nothing was held or
sent upstream.
"""

import json

import orjson
import pytest
from asgiref.sync import sync_to_async

from billing.models import Hold
from gateway import request
from gateway.anthropic import AnthropicRequestError, anthropic_request_to_openai
from gateway.anthropic import count_tokens_response as anthropic_count_tokens
from gateway.body_limits import MAX_DEPTH, too_deep
from gateway.errors import GatewayError
from tests.gateway.factories import buyer_make
from tests.market.factories import listing_make, seller_make

MODEL = "deepseek/deepseek-chat"
HELLO = [{"role": "user", "content": "Hello!"}]
CALL = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
DEEP = "Request body is nested deeper than 64 levels."


def nested(levels: int) -> object:
    """`levels` arrays, one inside the next (built without recursion, like the check)."""
    value: object = []
    for _ in range(levels - 1):
        value = [value]
    return value


def chat(**fields) -> dict:
    return {"model": MODEL, "messages": HELLO, **fields}


def said(message: dict) -> dict:
    return chat(messages=[message])


def assistant(**fields) -> dict:
    return said({"role": "assistant", "content": None, "tool_calls": [CALL], **fields})


def call(**fields) -> dict:
    return said({"role": "assistant", "content": None, "tool_calls": [{**CALL, **fields}]})


def part(value) -> dict:
    return said({"role": "user", "content": [value]})


CHAT_REFUSALS = [
    # the two bodies of the issue
    (said({"role": "assistant", "tool_calls": 5}), "'messages[0].tool_calls' must be an array"),
    (chat(vendor_extension=nested(300)), DEEP),
    (chat(vendor_extension=nested(MAX_DEPTH)), DEEP),  # 65 levels with the body's own
    # message fields in every position
    (said({"role": ["user"], "content": "x"}), "'messages[0].role' must be one of"),
    (said({"role": {"a": 1}, "content": "x"}), "'messages[0].role' must be one of"),
    (said({"role": "user", "content": "x", "name": 5}), "'messages[0].name' must be a string."),
    (said({"role": "tool", "content": "x", "tool_call_id": []}), "'messages[0].tool_call_id'"),
    (said({"role": "assistant", "content": "x", "refusal": 1}), "'messages[0].refusal' must"),
    (
        said({"role": "assistant", "function_call": 5, "content": "x"}),
        "'messages[0].function_call'",
    ),
    (
        said({"role": "assistant", "tool_calls": ["x"]}),
        "'messages[0].tool_calls[0]' must be an obj",
    ),
    (call(id=5), "'messages[0].tool_calls[0].id' is required and must be a string."),
    (call(type="custom"), "'messages[0].tool_calls[0].type' must be 'function'."),
    (call(function=[]), "'messages[0].tool_calls[0].function' must be an object"),
    (call(function={"name": "f", "arguments": {}}), "'messages[0].tool_calls[0].function.argu"),
    (call(function={"name": None, "arguments": "{}"}), "'messages[0].tool_calls[0].function.name"),
    # content parts
    (part(5), "'messages[0].content[0]' must be an object with a 'type'."),
    (part({"text": "x"}), "'messages[0].content[0].type' is required and must be a string."),
    (part({"type": ["text"]}), "'messages[0].content[0].type' is required and must be a string."),
    (
        part({"type": "text", "text": 5}),
        "'messages[0].content[0].text' is required and must be a s",
    ),
    (part({"type": "text"}), "'messages[0].content[0].text' is required"),
    (part({"type": "image_url", "image_url": "http://x"}), "'messages[0].content[0].image_url' is"),
    (part({"type": "image_url", "image_url": {"url": 5}}), "'messages[0].content[0].image_url.url"),
    (
        part({"type": "image_url", "image_url": {"url": "u", "detail": 1}}),
        "'messages[0].content[0].image_url.detail' must be a string.",
    ),
    (part({"type": "input_audio", "input_audio": {"data": "d"}}), "'messages[0].content[0].input_"),
    (part({"type": "file", "file": {"file_id": 5}}), "'messages[0].content[0].file.file_id' must"),
    # array caps
    (chat(messages=HELLO * 2049), "'messages' must hold at most 2048 messages."),
    (
        said({"role": "user", "content": [{"type": "text", "text": "x"}] * 257}),
        "'messages[0].conte",
    ),
    (
        assistant(tool_calls=[CALL] * 129),
        "'messages[0].tool_calls' must hold at most 128 tool calls.",
    ),
    (chat(tools=[TOOL] * 129), "'tools' must hold at most 128 tools."),
    # tools
    (
        chat(tools=[{**TOOL, "function": {"name": "f", "description": 5}}]),
        "'tools[0].function.desc",
    ),
    (chat(tools=[{**TOOL, "function": {"name": "f", "strict": "yes"}}]), "'tools[0].function.stri"),
    (chat(parallel_tool_calls="no"), "'parallel_tool_calls' must be a boolean."),
    # the other parameters, integers bounded
    (chat(max_tokens=10_000_001), "'max_tokens' must be at most 10,000,000."),
    (chat(max_completion_tokens=2**64 - 1), "'max_completion_tokens' must be at most 10,000,000."),
    (chat(n=0), "'n' must be an integer from 1 to 8."),
    (chat(n=9), "'n' must be an integer from 1 to 8."),
    (chat(n="2"), "'n' must be an integer from 1 to 8."),
    (chat(seed=1.5), "'seed' must be a 64-bit integer."),
    (chat(seed=2**63), "'seed' must be a 64-bit integer."),
    (chat(user=5), "'user' must be a string."),
    (chat(logprobs="yes"), "'logprobs' must be a boolean."),
    (chat(top_logprobs=21), "'top_logprobs' must be an integer from 0 to 20."),
    (chat(response_format="json"), "'response_format' must be an object with a string 'type'."),
    (
        chat(response_format={"type": 5}),
        "'response_format' must be an object with a string 'type'.",
    ),
    (chat(response_format={"type": "json_schema", "json_schema": 5}), "'response_format.json_sche"),
    (chat(stream_options={"include_usage": "yes"}), "'stream_options.include_usage' must be a b"),
    (chat(logit_bias=[1]), "'logit_bias' must be an object of at most 1024 token ids"),
    (chat(logit_bias={"a": 1}), "'logit_bias' key 'a' is not a token id"),
    (chat(logit_bias={"15": 101}), "'logit_bias.15' must be one of the numbers from -100 to 100."),
    (chat(logit_bias={"15": "1"}), "'logit_bias.15' must be one of the numbers from -100 to 100."),
    (
        chat(logit_bias={str(i): 1 for i in range(1025)}),
        "'logit_bias' must be an object of at most",
    ),
    (chat(metadata=["a"]), "'metadata' must be an object of at most 16 string values."),
    (chat(metadata={"a": 1}), "'metadata' must be an object of at most 16 string values."),
    (chat(metadata={str(i): "v" for i in range(17)}), "'metadata' must be an object of at most 16"),
    (chat(model="m" * 257), "'model' must be at most 256 characters."),
]


@pytest.mark.parametrize(("body", "message"), CHAT_REFUSALS)
def test_a_chat_body_of_the_wrong_shape_is_a_400_naming_the_field(body, message):
    with pytest.raises(GatewayError) as caught:
        request.chat_from(request.parse_json_object(json.dumps(body).encode()))
    assert caught.value.status == 400
    assert caught.value.message.startswith(message), caught.value.message


def test_a_body_at_every_cap_is_accepted():
    body = chat(
        messages=[
            {"role": "user", "content": [{"type": "text", "text": "x"}] * 256},
            {"role": "assistant", "content": None, "tool_calls": [CALL] * 128},
            *[{"role": "tool", "tool_call_id": "call_1", "content": "ok"}] * 2044,
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "u"}}]},
            {"role": "user", "content": [{"type": "some_future_part", "x": 1}]},
        ],
        tools=[TOOL] * 128,
        stop=["a", "b", "c", "d"],
        max_tokens=10_000_000,
        n=8,
        seed=-(2**63),
        top_logprobs=20,
        logit_bias={str(i): -100 for i in range(1024)},
        metadata={str(i): "v" for i in range(16)},
        vendor_extension=nested(MAX_DEPTH - 1),  # 64 levels with the body's own
    )
    assert len(body["messages"]) == 2048
    parsed = request.chat_from(request.parse_json_object(json.dumps(body).encode()))
    assert parsed.max_tokens == 10_000_000
    assert parsed.payload == body


def test_the_depth_check_counts_levels_without_recursion():
    assert not too_deep({"a": [1, {"b": "c"}]}, 3)
    assert too_deep({"a": [1, {"b": []}]}, 3)
    assert not too_deep(5, 1) and not too_deep([], 1)
    assert too_deep(orjson.loads(b"[" * 1024 + b"]" * 1024))  # orjson's own limit, far past ours


def anthropic(**fields) -> dict:
    return {"model": "claude-x", "max_tokens": 16, "messages": HELLO, **fields}


def turn(role: str, *blocks) -> dict:
    return anthropic(messages=[{"role": role, "content": list(blocks)}])


TOOL_USE = {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}
ANTHROPIC_REFUSALS = [
    (anthropic(messages=HELLO * 2049), "messages: at most 2048 messages are accepted"),
    (turn("user", *[{"type": "text", "text": "x"}] * 257), "messages.0.content: at most 256 con"),
    (turn("assistant", *[TOOL_USE] * 129), "messages.0.content: at most 128 tool_use blocks"),
    (anthropic(system=[{"type": "text", "text": "x"}] * 257), "system: at most 256 content blocks"),
    (
        anthropic(tools=[{"name": "f", "input_schema": {"type": "object"}}] * 129),
        "tools: at most 128 tools are accepted",
    ),
    (anthropic(top_k=10**12), "top_k: must be at most 1,000,000"),
    (anthropic(metadata="user-1"), "metadata: must be an object"),
    (anthropic(metadata={"user_id": 5}), "metadata.user_id: must be a string"),
    (anthropic(thinking=True), "thinking: must be an object with a string 'type'"),
    (anthropic(thinking={"type": "enabled", "budget_tokens": "1024"}), "thinking.budget_tokens:"),
    (anthropic(service_tier=1), "service_tier: must be a string"),
    (turn("assistant", {"type": "thinking", "thinking": 5}), "messages.0.content.0.thinking: must"),
    (
        turn("assistant", {"type": "redacted_thinking", "data": []}),
        "messages.0.content.0.data: must",
    ),
    (
        anthropic(
            messages=[
                {"role": "assistant", "content": [TOOL_USE]},
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "is_error": 1}],
                },
            ]
        ),
        "messages.1.content.0.is_error: must be a boolean",
    ),
    (anthropic(model="m" * 257), "model: must be at most 256 characters"),
]


@pytest.mark.parametrize(("body", "message"), ANTHROPIC_REFUSALS)
def test_a_messages_body_of_the_wrong_shape_is_a_400_naming_the_field(body, message):
    for translate in (anthropic_request_to_openai, anthropic_count_tokens):
        with pytest.raises(AnthropicRequestError) as caught:
            translate(body)
        assert caught.value.status == 400
        assert caught.value.message.startswith(message), caught.value.message


def test_max_tokens_on_messages_is_bounded():
    with pytest.raises(AnthropicRequestError) as caught:
        anthropic_request_to_openai(anthropic(max_tokens=10_000_001))
    assert caught.value.message == "max_tokens: must be at most 10,000,000"


def test_speech_refuses_a_response_format_of_the_wrong_type():
    body = {"model": "minimax/speech-02-hd", "input": "Hi", "response_format": ["mp3"]}
    with pytest.raises(GatewayError) as caught:
        request.speech_from(request.parse_json_object(json.dumps(body).encode()))
    assert caught.value.status == 400
    assert caught.value.message == "'response_format' must be one of mp3, wav, pcm."


# Through the application: the status, each endpoint's error shape, nothing held or sent.

# Valid on every endpoint but for the 300 levels (today's code answered chat with a 500).
DEEP_RAW = (
    b'{"model": "deepseek/deepseek-chat", "max_tokens": 4, "input": "Hi",'
    b' "messages": [{"role": "user", "content": "Hi"}], "deep": ' + b"[" * 300 + b"]" * 300 + b"}"
)
OPENAI_DEEP = {"error": {"message": DEEP, "type": "bad_request", "code": 400}}
ANTHROPIC_DEEP = {"type": "error", "error": {"type": "invalid_request_error", "message": DEEP}}


def _auth(buyer) -> dict:
    return {"Authorization": f"Bearer {buyer.key}"}


async def _nothing_happened(market, buyer) -> None:
    assert market.app.stats()["keys"] == {}
    assert await sync_to_async(Hold.objects.filter(user=buyer.user).count)() == 0


@pytest.mark.django_db(transaction=True)
async def test_tool_calls_that_are_a_number_are_a_400_naming_them(market, client):
    buyer = await sync_to_async(buyer_make)()
    await sync_to_async(lambda: listing_make(seller_make(), key="sim-limits-calls"))()
    body = said({"role": "assistant", "content": "x", "tool_calls": 5})
    response = await client.post("/v1/chat/completions", headers=_auth(buyer), json=body)
    assert response.status_code == 400
    assert response.json() == {
        "error": {
            "message": "'messages[0].tool_calls' must be an array of tool calls.",
            "type": "bad_request",
            "code": 400,
        }
    }
    await _nothing_happened(market, buyer)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/v1/chat/completions", OPENAI_DEEP),
        ("/v1/audio/speech", OPENAI_DEEP),
        ("/v1/rerank", OPENAI_DEEP),
        ("/v1/messages", ANTHROPIC_DEEP),
        ("/v1/messages/count_tokens", ANTHROPIC_DEEP),
    ],
)
async def test_a_body_nested_300_deep_is_a_400_on_every_endpoint(market, client, path, expected):
    buyer = await sync_to_async(buyer_make)()
    await sync_to_async(lambda: listing_make(seller_make(), key="sim-limits-deep"))()
    response = await client.post(path, headers=_auth(buyer), content=DEEP_RAW)
    assert response.status_code == 400
    body = response.json()
    body.pop("request_id", None)
    assert body == expected
    await _nothing_happened(market, buyer)


@pytest.mark.django_db(transaction=True)
async def test_a_deeply_nested_tool_input_on_messages_is_a_400_in_anthropics_shape(market, client):
    buyer = await sync_to_async(buyer_make)()
    await sync_to_async(lambda: listing_make(seller_make(), key="sim-limits-input"))()
    tool_input: dict = {}
    for _ in range(300):
        tool_input = {"a": tool_input}
    body = anthropic(
        model=MODEL,
        messages=[
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": [{**TOOL_USE, "input": tool_input}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1"}]},
        ],
    )
    response = await client.post("/v1/messages", headers=_auth(buyer), json=body)
    assert response.status_code == 400
    assert response.json()["error"] == {"type": "invalid_request_error", "message": DEEP}
    await _nothing_happened(market, buyer)


@pytest.mark.django_db(transaction=True)
async def test_a_body_at_the_depth_cap_is_served(market, client):
    buyer = await sync_to_async(buyer_make)()
    await sync_to_async(lambda: listing_make(seller_make(), key="sim-limits-cap"))()
    body = chat(max_tokens=4, vendor_extension=nested(MAX_DEPTH - 1))
    response = await client.post("/v1/chat/completions", headers=_auth(buyer), json=body)
    assert response.status_code == 200, response.text
    upstream = market.app.stats()["keys"]["sim-limits-cap"]["last_body"]
    assert upstream["vendor_extension"] == body["vendor_extension"]
