"""OpenAI chunks → Anthropic SSE events, asserted event by event."""

import orjson

from gateway.anthropic import OpenAIToAnthropicStream, sse_event


def chunk(delta=None, finish_reason=None, **extra):
    return {
        "id": "chatcmpl-42",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "upstream-model",
        "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish_reason}],
        **extra,
    }


def tool_fragment(index, arguments, **call):
    return chunk({"tool_calls": [{"index": index, "function": {"arguments": arguments}, **call}]})


USAGE_CHUNK = {
    "id": "chatcmpl-42",
    "object": "chat.completion.chunk",
    "created": 1700000000,
    "model": "upstream-model",
    "choices": [],
    "usage": {"prompt_tokens": 30, "completion_tokens": 12, "total_tokens": 42},
}

TEXT_THEN_TOOL = [
    chunk({"role": "assistant", "content": ""}),
    chunk({"content": "Let me "}),
    chunk({"content": "check."}),
    chunk(
        {
            "tool_calls": [
                {
                    "index": 0,
                    "id": "call_w1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": ""},
                }
            ]
        }
    ),
    tool_fragment(0, '{"ci'),
    tool_fragment(0, 'ty": "Paris"}'),
    chunk({}, "tool_calls"),
    USAGE_CHUNK,
]


def parse(raw: bytes) -> list[tuple[str, dict]]:
    events = []
    for frame in raw.split(b"\n\n"):
        if not frame:
            continue
        event_line, data_line = frame.split(b"\n")
        assert event_line.startswith(b"event: ")
        assert data_line.startswith(b"data: ")
        event, data = event_line[7:].decode(), orjson.loads(data_line[6:])
        assert data["type"] == event
        events.append((event, data))
    return events


def run(chunks, **kwargs) -> tuple[list[list[bytes]], bytes]:
    translator = OpenAIToAnthropicStream(model="claude-sonnet-4-6", **kwargs)
    per_chunk = [translator.feed(c) for c in chunks]
    return per_chunk, translator.finish()


def message_start(input_tokens=0, message_id="msg_42"):
    return (
        "message_start",
        {
            "type": "message_start",
            "message": {
                "id": message_id,
                "type": "message",
                "role": "assistant",
                "model": "claude-sonnet-4-6",
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": input_tokens, "output_tokens": 0},
            },
        },
    )


def text_delta(index, text):
    return (
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": index,
            "delta": {"type": "text_delta", "text": text},
        },
    )


def json_delta(index, partial):
    return (
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": index,
            "delta": {"type": "input_json_delta", "partial_json": partial},
        },
    )


def block_start(index, content_block):
    return (
        "content_block_start",
        {"type": "content_block_start", "index": index, "content_block": content_block},
    )


def block_stop(index):
    return ("content_block_stop", {"type": "content_block_stop", "index": index})


def closing(stop_reason, usage):
    return [
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": usage,
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]


PING = ("ping", {"type": "ping"})


def test_sse_event_frames_one_event():
    assert sse_event("ping", {"type": "ping"}) == b'event: ping\ndata: {"type":"ping"}\n\n'


def test_text_then_a_fragmented_tool_call_gives_the_exact_event_sequence():
    per_chunk, tail = run(TEXT_THEN_TOOL)
    assert [parse(b"".join(events)) for events in per_chunk] == [
        [message_start(), PING],
        [block_start(0, {"type": "text", "text": ""}), text_delta(0, "Let me ")],
        [text_delta(0, "check.")],
        [
            block_stop(0),
            block_start(
                1, {"type": "tool_use", "id": "call_w1", "name": "get_weather", "input": {}}
            ),
        ],
        [json_delta(1, '{"ci')],
        [json_delta(1, 'ty": "Paris"}')],
        [],
        [],
    ]
    assert parse(tail) == [
        block_stop(1),
        *closing("tool_use", {"input_tokens": 30, "output_tokens": 12}),
    ]


def test_each_returned_item_is_one_sse_event():
    per_chunk, _ = run(TEXT_THEN_TOOL)
    for events in per_chunk:
        for event in events:
            assert len(parse(event)) == 1


def test_a_plain_text_stream_ends_with_end_turn():
    chunks = [
        chunk({"role": "assistant"}),
        chunk({"content": "Hi"}),
        chunk({}, "stop"),
        USAGE_CHUNK,
    ]
    per_chunk, tail = run(chunks, input_tokens=30)
    assert parse(b"".join(b"".join(events) for events in per_chunk) + tail) == [
        message_start(input_tokens=30),
        PING,
        block_start(0, {"type": "text", "text": ""}),
        text_delta(0, "Hi"),
        block_stop(0),
        *closing("end_turn", {"input_tokens": 30, "output_tokens": 12}),
    ]


def test_length_maps_to_max_tokens_and_usage_can_be_given_at_finish():
    translator = OpenAIToAnthropicStream(model="dragon", message_id="msg_fixed")
    translator.feed(chunk({"content": "Once upon"}))
    translator.feed(chunk({}, "length"))
    tail = parse(translator.finish(usage={"completion_tokens": 5}))
    assert tail[-2] == closing("max_tokens", {"output_tokens": 5})[0]


def test_without_usage_the_closing_delta_reports_zero_output_tokens():
    translator = OpenAIToAnthropicStream(model="dragon")
    translator.feed(chunk({"content": "x"}, "stop"))
    assert parse(translator.finish())[-2] == closing("end_turn", {"output_tokens": 0})[0]


def test_two_tool_calls_get_consecutive_blocks_and_arguments_before_the_name_are_held():
    chunks = [
        chunk({"tool_calls": [{"index": 0, "id": "call_a", "function": {"arguments": '{"x"'}}]}),
        tool_fragment(0, ": 1}"),
        chunk({"tool_calls": [{"index": 0, "function": {"name": "alpha"}}]}),
        chunk(
            {
                "tool_calls": [
                    {"index": 1, "id": "call_b", "function": {"name": "beta", "arguments": "{}"}}
                ]
            }
        ),
        chunk({}, "tool_calls"),
    ]
    per_chunk, tail = run(chunks)
    assert parse(b"".join(b"".join(events) for events in per_chunk) + tail) == [
        message_start(),
        PING,
        block_start(0, {"type": "tool_use", "id": "call_a", "name": "alpha", "input": {}}),
        json_delta(0, '{"x": 1}'),
        block_stop(0),
        block_start(1, {"type": "tool_use", "id": "call_b", "name": "beta", "input": {}}),
        json_delta(1, "{}"),
        block_stop(1),
        *closing("tool_use", {"output_tokens": 0}),
    ]


def test_text_after_a_tool_call_opens_a_new_text_block():
    chunks = [
        chunk(
            {"tool_calls": [{"index": 0, "id": "c", "function": {"name": "f", "arguments": "{}"}}]}
        ),
        chunk({"content": "done"}),
        chunk({}, "stop"),
    ]
    per_chunk, _ = run(chunks)
    assert parse(b"".join(per_chunk[1])) == [
        block_stop(0),
        block_start(1, {"type": "text", "text": ""}),
        text_delta(1, "done"),
    ]


def test_choices_other_than_the_first_are_ignored():
    second = chunk({"content": "other"})
    second["choices"][0]["index"] = 1
    translator = OpenAIToAnthropicStream(model="dragon")
    translator.feed(chunk({"role": "assistant"}))
    assert translator.feed(second) == []


def test_finish_without_any_chunk_still_gives_a_complete_empty_message():
    translator = OpenAIToAnthropicStream(model="dragon", message_id="msg_empty", input_tokens=3)
    events = parse(translator.finish())
    assert [name for name, _ in events] == [
        "message_start",
        "ping",
        "message_delta",
        "message_stop",
    ]
    assert events[0][1]["message"]["id"] == "msg_empty"
    assert events[0][1]["message"]["usage"] == {"input_tokens": 3, "output_tokens": 0}


def test_start_can_be_sent_before_the_first_chunk_and_is_not_repeated():
    translator = OpenAIToAnthropicStream(model="dragon", message_id="msg_early")
    assert [name for name, _ in parse(b"".join(translator.start()))] == ["message_start", "ping"]
    assert parse(b"".join(translator.feed(chunk({"content": "a"})))) == [
        block_start(0, {"type": "text", "text": ""}),
        text_delta(0, "a"),
    ]


def test_finish_is_emitted_once():
    translator = OpenAIToAnthropicStream(model="dragon")
    translator.feed(chunk({"content": "a"}, "stop"))
    assert translator.finish() != b""
    assert translator.finish() == b""
    assert translator.feed(chunk({"content": "late"})) == []


def test_error_event_uses_anthropics_error_shape_and_ends_the_stream():
    translator = OpenAIToAnthropicStream(model="dragon")
    translator.feed(chunk({"content": "partial"}))
    raw = translator.error_event("Upstream provider failed mid-stream.", "overloaded_error")
    assert raw == (
        b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error",'
        b'"message":"Upstream provider failed mid-stream."}}\n\n'
    )
    assert translator.finish() == b""


def test_error_event_defaults_to_api_error():
    translator = OpenAIToAnthropicStream(model="dragon")
    assert parse(translator.error_event("boom")) == [
        ("error", {"type": "error", "error": {"type": "api_error", "message": "boom"}})
    ]
