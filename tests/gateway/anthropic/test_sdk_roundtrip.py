"""The official `anthropic` SDK parses what the translators produce.

Each test puts the translators behind an httpx2.MockTransport (the SDK's HTTP client): the SDK's request
goes through anthropic_request_to_openai, a canned OpenAI answer comes back through the response or
stream translator, and the SDK's own parsing (Message models, SSE decoder, stream accumulator,
error classes) must reconstruct it.
"""

import anthropic
import httpx2
import orjson
import pytest

from gateway.anthropic import (
    AnthropicRequestError,
    OpenAIToAnthropicStream,
    anthropic_error_body,
    anthropic_request_to_openai,
    openai_response_to_anthropic,
)

MODEL = "claude-sonnet-4-6"
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Look up the weather for a city.",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


def chunk(delta=None, finish_reason=None):
    return {
        "id": "chatcmpl-sdk1",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "upstream-model",
        "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish_reason}],
    }


def call_fragment(arguments):
    return chunk({"tool_calls": [{"index": 0, "function": {"arguments": arguments}}]})


TEXT_THEN_TOOL_CHUNKS = [
    chunk({"role": "assistant", "content": ""}),
    chunk({"content": "Let me "}),
    chunk({"content": "check the weather."}),
    chunk(
        {
            "tool_calls": [
                {
                    "index": 0,
                    "id": "call_W1x-9",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": ""},
                }
            ]
        }
    ),
    call_fragment('{"ci'),
    call_fragment('ty": "Par'),
    call_fragment('is"}'),
    chunk({}, "tool_calls"),
    {
        "id": "chatcmpl-sdk1",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "upstream-model",
        "choices": [],
        "usage": {"prompt_tokens": 31, "completion_tokens": 17, "total_tokens": 48},
    },
]


class Gateway:
    """Stands in for /v1/messages: translate the request, answer from canned OpenAI data."""

    def __init__(self, *, completion=None, chunks=None, piece_size=None, error=None):
        self.completion = completion
        self.chunks = chunks
        self.piece_size = piece_size  # re-slice the SSE bytes to prove framing survives any split
        self.error = error
        self.openai_bodies: list[dict] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        assert request.url.path == "/v1/messages"
        if self.error is not None:
            status, message = self.error
            return httpx2.Response(
                status, content=anthropic_error_body(status, message), headers=JSON
            )
        body = orjson.loads(request.content)
        try:
            openai_body = anthropic_request_to_openai(body)
        except AnthropicRequestError as exc:
            return httpx2.Response(
                400, content=anthropic_error_body(400, exc.message), headers=JSON
            )
        self.openai_bodies.append(openai_body)
        if not openai_body.get("stream"):
            payload = openai_response_to_anthropic(self.completion, model=body["model"])
            return httpx2.Response(200, content=orjson.dumps(payload), headers=JSON)
        translator = OpenAIToAnthropicStream(model=body["model"])
        raw = b"".join(b"".join(translator.feed(c)) for c in self.chunks) + translator.finish()
        size = self.piece_size or len(raw)
        pieces = [raw[i : i + size] for i in range(0, len(raw), size)]
        return httpx2.Response(
            200, content=iter(pieces), headers={"content-type": "text/event-stream"}
        )


JSON = {"content-type": "application/json"}


def client_for(gateway: Gateway) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url="http://dragonfly.test",
        api_key="df-test-key",
        max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(gateway)),
    )


def test_sdk_stream_reconstructs_text_tool_use_stop_reason_and_usage():
    gateway = Gateway(chunks=TEXT_THEN_TOOL_CHUNKS, piece_size=7)
    client = client_for(gateway)
    with client.messages.stream(
        model=MODEL,
        max_tokens=512,
        tools=[WEATHER_TOOL],
        messages=[{"role": "user", "content": "What's the weather in Paris?"}],
    ) as stream:
        texts = list(stream.text_stream)
        message = stream.get_final_message()

    assert texts == ["Let me ", "check the weather."]
    assert message.id == "msg_sdk1"
    assert message.model == MODEL
    assert message.role == "assistant"
    assert [block.type for block in message.content] == ["text", "tool_use"]
    assert message.content[0].text == "Let me check the weather."
    tool_use = message.content[1]
    assert (tool_use.id, tool_use.name, tool_use.input) == (
        "call_W1x-9",
        "get_weather",
        {"city": "Paris"},
    )
    assert message.stop_reason == "tool_use"
    assert message.stop_sequence is None
    assert (message.usage.input_tokens, message.usage.output_tokens) == (31, 17)
    assert gateway.openai_bodies[0]["stream"] is True
    assert gateway.openai_bodies[0]["stream_options"] == {"include_usage": True}


def test_sdk_raw_stream_events_arrive_in_anthropic_order():
    client = client_for(Gateway(chunks=TEXT_THEN_TOOL_CHUNKS))
    events = client.messages.create(
        model=MODEL,
        max_tokens=512,
        stream=True,
        messages=[{"role": "user", "content": "Weather?"}],
    )
    kinds = []
    for event in events:
        kind = event.type
        if kind == "content_block_delta":
            kind += f":{event.delta.type}"
        elif kind == "content_block_start":
            kind += f":{event.content_block.type}"
        kinds.append(kind)
    assert kinds == [
        "message_start",
        "content_block_start:text",
        "content_block_delta:text_delta",
        "content_block_delta:text_delta",
        "content_block_stop",
        "content_block_start:tool_use",
        "content_block_delta:input_json_delta",
        "content_block_delta:input_json_delta",
        "content_block_delta:input_json_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]


async def test_async_sdk_stream_reconstructs_the_same_message():
    gateway = Gateway(chunks=TEXT_THEN_TOOL_CHUNKS)

    async def handler(request: httpx2.Request) -> httpx2.Response:
        response = gateway(request)
        return httpx2.Response(200, content=b"".join(response.stream), headers=response.headers)

    client = anthropic.AsyncAnthropic(
        base_url="http://dragonfly.test",
        api_key="df-test-key",
        max_retries=0,
        http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(handler)),
    )
    async with client.messages.stream(
        model=MODEL, max_tokens=64, messages=[{"role": "user", "content": "Weather?"}]
    ) as stream:
        message = await stream.get_final_message()
    assert message.content[1].input == {"city": "Paris"}
    assert message.stop_reason == "tool_use"
    assert message.usage.output_tokens == 17


def test_sdk_tool_loop_sends_ids_back_verbatim():
    gateway = Gateway(chunks=TEXT_THEN_TOOL_CHUNKS)
    client = client_for(gateway)
    question = {"role": "user", "content": "What's the weather in Paris?"}
    with client.messages.stream(
        model=MODEL, max_tokens=512, tools=[WEATHER_TOOL], messages=[question]
    ) as stream:
        first = stream.get_final_message()

    gateway.completion = {
        "id": "chatcmpl-final",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "It's 15 degrees in Paris."},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 60, "completion_tokens": 9},
    }
    final = client.messages.create(
        model=MODEL,
        max_tokens=512,
        tools=[WEATHER_TOOL],
        messages=[
            question,
            {"role": "assistant", "content": first.content},
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": first.content[1].id,
                        "content": "15 degrees",
                    }
                ],
            },
        ],
    )

    assert gateway.openai_bodies[1]["messages"][1:] == [
        {
            "role": "assistant",
            "content": "Let me check the weather.",
            "tool_calls": [
                {
                    "id": "call_W1x-9",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_W1x-9", "content": "15 degrees"},
    ]
    assert final.stop_reason == "end_turn"
    assert final.content[0].text == "It's 15 degrees in Paris."


def test_sdk_parses_a_translated_non_streaming_text_message():
    completion = {
        "id": "chatcmpl-abc",
        "object": "chat.completion",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello!"},
                "finish_reason": "length",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
    }
    gateway = Gateway(completion=completion)
    message = client_for(gateway).messages.create(
        model=MODEL,
        max_tokens=3,
        system="Be brief.",
        stop_sequences=["END"],
        messages=[{"role": "user", "content": "Hi"}],
    )
    assert isinstance(message, anthropic.types.Message)
    assert message.id == "msg_abc"
    assert message.type == "message"
    assert message.model == MODEL
    assert [(block.type, block.text) for block in message.content] == [("text", "Hello!")]
    assert message.stop_reason == "max_tokens"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (12, 3)
    assert gateway.openai_bodies == [
        {
            "model": MODEL,
            "max_tokens": 3,
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hi"},
            ],
            "stop": ["END"],
        }
    ]


def test_sdk_parses_a_translated_non_streaming_tool_use_message():
    completion = {
        "id": "chatcmpl-tool",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_Q7",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
                        }
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {"prompt_tokens": 40, "completion_tokens": 11},
    }
    message = client_for(Gateway(completion=completion)).messages.create(
        model=MODEL,
        max_tokens=100,
        tools=[WEATHER_TOOL],
        tool_choice={"type": "tool", "name": "get_weather"},
        messages=[{"role": "user", "content": "Rome?"}],
    )
    assert len(message.content) == 1
    block = message.content[0]
    assert isinstance(block, anthropic.types.ToolUseBlock)
    assert (block.id, block.name, block.input) == ("call_Q7", "get_weather", {"city": "Rome"})
    assert message.stop_reason == "tool_use"


@pytest.mark.parametrize(
    ("status", "message", "exception", "error_type"),
    [
        (400, "max_tokens: field required", anthropic.BadRequestError, "invalid_request_error"),
        (401, "Invalid API key.", anthropic.AuthenticationError, "authentication_error"),
        (403, "Insufficient balance", anthropic.PermissionDeniedError, "permission_error"),
        (404, "Unknown model.", anthropic.NotFoundError, "not_found_error"),
        (429, "Rate limit exceeded.", anthropic.RateLimitError, "rate_limit_error"),
        (500, "Internal error.", anthropic.InternalServerError, "api_error"),
        (502, "Upstream provider error.", anthropic.InternalServerError, "api_error"),
        (503, "No capacity.", anthropic.InternalServerError, "overloaded_error"),
    ],
)
def test_sdk_raises_the_matching_exception_for_our_error_bodies(
    status, message, exception, error_type
):
    client = client_for(Gateway(error=(status, message)))
    with pytest.raises(exception) as caught:
        client.messages.create(
            model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "Hi"}]
        )
    assert caught.value.status_code == status
    assert caught.value.body == {"type": "error", "error": {"type": error_type, "message": message}}


def test_sdk_gets_a_bad_request_error_for_a_refused_request():
    client = client_for(Gateway(completion={}))
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(
            model=MODEL,
            max_tokens=10,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/png", "data": "AA=="},
                        }
                    ],
                }
            ],
        )
    assert caught.value.body["error"]["type"] == "invalid_request_error"
    assert caught.value.body["error"]["message"].startswith(
        "messages.0.content.0: 'image' content blocks are not supported"
    )


def test_sdk_raises_on_a_mid_stream_error_event():
    def handler(request: httpx2.Request) -> httpx2.Response:
        translator = OpenAIToAnthropicStream(model=MODEL)
        raw = b"".join(translator.feed(chunk({"content": "partial"})))
        raw += translator.error_event("Upstream provider failed.", "overloaded_error")
        return httpx2.Response(200, content=raw, headers={"content-type": "text/event-stream"})

    client = anthropic.Anthropic(
        base_url="http://dragonfly.test",
        api_key="df-test-key",
        max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
    )
    received = []
    with (
        pytest.raises(anthropic.APIStatusError) as caught,
        client.messages.stream(
            model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "Hi"}]
        ) as stream,
    ):
        received.extend(stream.text_stream)
    assert received == ["partial"]
    assert caught.value.body == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Upstream provider failed."},
    }
