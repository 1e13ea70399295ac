"""Anthropic Messages request → OpenAI chat.completions body."""

import copy

import pytest

from gateway.anthropic import AnthropicRequestError, anthropic_request_to_openai

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Look up the weather for a city.",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
OPENAI_WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Look up the weather for a city.",
        "parameters": WEATHER_TOOL["input_schema"],
    },
}


def body(**extra):
    return {
        "model": "claude-sonnet-4-6",
        "max_tokens": 256,
        "messages": [{"role": "user", "content": "Hello"}],
        **extra,
    }


def refusal(request) -> AnthropicRequestError:
    with pytest.raises(AnthropicRequestError) as caught:
        anthropic_request_to_openai(request)
    return caught.value


def test_it_translates_a_minimal_request():
    assert anthropic_request_to_openai(body()) == {
        "model": "claude-sonnet-4-6",
        "max_tokens": 256,
        "messages": [{"role": "user", "content": "Hello"}],
    }


def test_it_leaves_the_input_untouched():
    request = body(system=[{"type": "text", "text": "Be brief."}], tools=[WEATHER_TOOL])
    before = copy.deepcopy(request)
    anthropic_request_to_openai(request)
    assert request == before


def test_it_puts_a_string_system_prompt_first():
    out = anthropic_request_to_openai(body(system="Be brief."))
    assert out["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hello"},
    ]


def test_it_joins_system_text_blocks_and_ignores_cache_control():
    system = [
        {"type": "text", "text": "You are Dragon."},
        {"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}},
    ]
    out = anthropic_request_to_openai(body(system=system))
    assert out["messages"][0] == {"role": "system", "content": "You are Dragon.\nBe brief."}


def test_it_omits_an_empty_system_prompt():
    out = anthropic_request_to_openai(body(system=""))
    assert out["messages"] == [{"role": "user", "content": "Hello"}]


def test_it_translates_a_multi_turn_conversation_with_text_blocks():
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Two things.", "cache_control": {"type": "ephemeral"}},
                {"type": "text", "text": "First: a haiku."},
            ],
        },
        {"role": "assistant", "content": [{"type": "text", "text": "Autumn"}]},
    ]
    out = anthropic_request_to_openai(body(messages=messages))
    assert out["messages"] == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Two things.\nFirst: a haiku."},
        {"role": "assistant", "content": "Autumn"},
    ]


def test_it_maps_sampling_fields_and_stop_sequences():
    out = anthropic_request_to_openai(
        body(temperature=0.2, top_p=0.9, top_k=40, stop_sequences=["\n\nHuman:", "END"])
    )
    assert out == {
        "model": "claude-sonnet-4-6",
        "max_tokens": 256,
        "messages": [{"role": "user", "content": "Hello"}],
        "temperature": 0.2,
        "top_p": 0.9,
        "stop": ["\n\nHuman:", "END"],
    }


def test_it_drops_metadata_thinking_and_unknown_fields():
    out = anthropic_request_to_openai(
        body(
            metadata={"user_id": "u-1"},
            thinking={"type": "enabled", "budget_tokens": 1024},
            service_tier="auto",
        )
    )
    assert out == anthropic_request_to_openai(body())


def test_it_asks_for_the_usage_chunk_when_streaming():
    out = anthropic_request_to_openai(body(stream=True))
    assert out["stream"] is True
    assert out["stream_options"] == {"include_usage": True}


def test_it_does_not_set_stream_when_false():
    out = anthropic_request_to_openai(body(stream=False))
    assert "stream" not in out
    assert "stream_options" not in out


def test_it_translates_tools():
    bare = {"name": "ping", "input_schema": {"type": "object", "properties": {}}}
    cached = {**WEATHER_TOOL, "cache_control": {"type": "ephemeral"}, "type": "custom"}
    out = anthropic_request_to_openai(body(tools=[cached, bare]))
    assert out["tools"] == [
        OPENAI_WEATHER_TOOL,
        {"type": "function", "function": {"name": "ping", "parameters": bare["input_schema"]}},
    ]
    assert "tool_choice" not in out


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, "auto"),
        ({"type": "any"}, "required"),
        ({"type": "none"}, "none"),
        (
            {"type": "tool", "name": "get_weather"},
            {"type": "function", "function": {"name": "get_weather"}},
        ),
    ],
)
def test_it_translates_tool_choice(choice, expected):
    out = anthropic_request_to_openai(body(tools=[WEATHER_TOOL], tool_choice=choice))
    assert out["tool_choice"] == expected
    assert "parallel_tool_calls" not in out


def test_it_maps_disable_parallel_tool_use():
    choice = {"type": "any", "disable_parallel_tool_use": True}
    out = anthropic_request_to_openai(body(tools=[WEATHER_TOOL], tool_choice=choice))
    assert out["tool_choice"] == "required"
    assert out["parallel_tool_calls"] is False


def test_it_drops_auto_tool_choice_without_tools():
    out = anthropic_request_to_openai(body(tool_choice={"type": "auto"}))
    assert "tool_choice" not in out


def test_it_round_trips_tool_use_and_tool_result_with_ids_verbatim():
    messages = [
        {"role": "user", "content": "What's the weather in Paris and Rome?"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me check."},
                {
                    "type": "tool_use",
                    "id": "toolu_01A09q90qw90lq917835lq9",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                },
                {
                    "type": "tool_use",
                    "id": "call_Rome-42",
                    "name": "get_weather",
                    "input": {"city": "Rome"},
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_01A09q90qw90lq917835lq9",
                    "content": "15 degrees, cloudy",
                    "cache_control": {"type": "ephemeral"},
                },
                {
                    "type": "tool_result",
                    "tool_use_id": "call_Rome-42",
                    "content": [
                        {"type": "text", "text": "24 degrees"},
                        {"type": "text", "text": "sunny"},
                    ],
                    "is_error": False,
                },
                {"type": "text", "text": "Which is warmer?"},
            ],
        },
    ]
    out = anthropic_request_to_openai(body(messages=messages, tools=[WEATHER_TOOL]))
    assert out["messages"] == [
        {"role": "user", "content": "What's the weather in Paris and Rome?"},
        {
            "role": "assistant",
            "content": "Let me check.",
            "tool_calls": [
                {
                    "id": "toolu_01A09q90qw90lq917835lq9",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                },
                {
                    "id": "call_Rome-42",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
                },
            ],
        },
        {
            "role": "tool",
            "tool_call_id": "toolu_01A09q90qw90lq917835lq9",
            "content": "15 degrees, cloudy",
        },
        {"role": "tool", "tool_call_id": "call_Rome-42", "content": "24 degrees\nsunny"},
        {"role": "user", "content": "Which is warmer?"},
    ]


def test_an_assistant_turn_of_only_tool_use_has_null_content():
    messages = [
        {"role": "user", "content": "Weather?"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t1", "name": "get_weather", "input": {}}],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1"}]},
    ]
    out = anthropic_request_to_openai(body(messages=messages))
    assert out["messages"][1:] == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "t1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": "{}"},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "t1", "content": ""},
    ]


def test_it_drops_thinking_blocks_replayed_in_assistant_turns():
    messages = [
        {"role": "user", "content": "Hi"},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                {"type": "redacted_thinking", "data": "xyz"},
                {"type": "text", "text": "Hello"},
            ],
        },
    ]
    out = anthropic_request_to_openai(body(messages=messages))
    assert out["messages"][1] == {"role": "assistant", "content": "Hello"}


# Validation: every refusal names the field, in Anthropic's "path: problem" style.


@pytest.mark.parametrize(
    ("request_body", "param", "message"),
    [
        (
            {"model": "dragon", "messages": [{"role": "user", "content": "Hi"}]},
            "max_tokens",
            "max_tokens: field required (a positive integer)",
        ),
        (body(max_tokens=0), "max_tokens", "max_tokens: must be a positive integer"),
        (body(max_tokens=1.5), "max_tokens", "max_tokens: must be a positive integer"),
        (body(max_tokens=True), "max_tokens", "max_tokens: must be a positive integer"),
        (body(model=""), "model", "model: field required (a non-empty string)"),
        (body(model=7), "model", "model: field required (a non-empty string)"),
        (
            body(messages=[]),
            "messages",
            "messages: field required (a non-empty array of messages)",
        ),
        (
            body(messages="Hi"),
            "messages",
            "messages: field required (a non-empty array of messages)",
        ),
        (
            body(messages=[{"role": "tool", "content": "x"}]),
            "messages.0.role",
            "messages.0.role: must be 'user' or 'assistant'",
        ),
        (
            body(messages=[{"role": "system", "content": "x"}]),
            "messages.0.role",
            "messages.0.role: must be 'user' or 'assistant' "
            "(put system instructions in the top-level 'system' field)",
        ),
        (
            body(messages=[{"role": "user", "content": []}]),
            "messages.0.content",
            "messages.0.content: must be a string or a non-empty array of content blocks",
        ),
        (
            body(messages=[{"role": "user", "content": [{"type": "text"}]}]),
            "messages.0.content.0.text",
            "messages.0.content.0.text: field required (a string)",
        ),
        (
            body(system=[{"type": "image"}]),
            "system.0.type",
            "system.0.type: system blocks must be of type 'text'",
        ),
        (body(system=5), "system", "system: must be a string or an array of text blocks"),
        (body(temperature=1.5), "temperature", "temperature: must be a number between 0 and 1"),
        (body(top_p=-0.1), "top_p", "top_p: must be a number between 0 and 1"),
        (body(top_k=-1), "top_k", "top_k: must be a non-negative integer"),
        (
            body(stop_sequences="END"),
            "stop_sequences",
            "stop_sequences: must be an array of non-empty strings",
        ),
        (
            body(stop_sequences=["a", "b", "c", "d", "e"]),
            "stop_sequences",
            "stop_sequences: at most 4 stop sequences are supported",
        ),
        (body(stream="yes"), "stream", "stream: must be a boolean"),
    ],
)
def test_it_refuses_invalid_fields(request_body, param, message):
    error = refusal(request_body)
    assert error.param == param
    assert error.message == message
    assert str(error) == message
    assert error.status == 400


def test_it_refuses_a_non_object_body():
    error = refusal(["not", "an", "object"])
    assert error.param is None
    assert error.message == "Request body must be a JSON object."


def test_it_refuses_image_blocks_clearly():
    image = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
    }
    error = refusal(
        body(messages=[{"role": "user", "content": [{"type": "text", "text": "What?"}, image]}])
    )
    assert error.param == "messages.0.content.1"
    assert error.message == (
        "messages.0.content.1: 'image' content blocks are not supported: "
        "Dragonfly's models take text only; send the content as text"
    )


def test_it_refuses_images_inside_tool_results():
    messages = [
        {"role": "user", "content": "Screenshot?"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t1", "name": "shot", "input": {}}],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "t1",
                    "content": [{"type": "image", "source": {}}],
                }
            ],
        },
    ]
    error = refusal(body(messages=messages))
    assert error.param == "messages.2.content.0.content.0"


def test_it_refuses_document_and_unknown_blocks():
    document = refusal(body(messages=[{"role": "user", "content": [{"type": "document"}]}]))
    assert document.param == "messages.0.content.0"
    assert "'document' content blocks are not supported" in document.message
    unknown = refusal(body(messages=[{"role": "user", "content": [{"type": "video"}]}]))
    assert unknown.message == "messages.0.content.0: unsupported content block type 'video'"


def test_it_refuses_tool_use_in_a_user_turn_and_tool_result_in_an_assistant_turn():
    tool_use = {"type": "tool_use", "id": "t1", "name": "f", "input": {}}
    error = refusal(body(messages=[{"role": "user", "content": [tool_use]}]))
    assert error.message == "messages.0.content.0: tool_use blocks belong in assistant messages"
    tool_result = {"type": "tool_result", "tool_use_id": "t1", "content": "x"}
    error = refusal(
        body(
            messages=[
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": [tool_result]},
            ]
        )
    )
    assert error.message == "messages.1.content.0: tool_result blocks belong in user messages"


def test_it_refuses_a_tool_result_for_an_unknown_tool_use_id():
    messages = [
        {"role": "user", "content": "Weather?"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t2", "content": "x"}]},
    ]
    error = refusal(body(messages=messages))
    assert error.param == "messages.2.content.0.tool_use_id"
    assert error.message == (
        "messages.2.content.0.tool_use_id: 't2' does not match a tool_use block "
        "in the previous assistant message"
    )


def test_it_refuses_a_tool_use_left_without_a_tool_result():
    messages = [
        {"role": "user", "content": "Weather?"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}],
        },
        {"role": "user", "content": "never mind"},
    ]
    error = refusal(body(messages=messages))
    assert error.param == "messages.2"
    assert error.message == (
        "messages.2: tool_use ids were found without tool_result blocks immediately after: t1"
    )


def test_it_refuses_a_tool_use_without_id_or_with_non_object_input():
    no_id = {"type": "tool_use", "name": "f", "input": {}}
    error = refusal(
        body(messages=[{"role": "user", "content": "x"}, {"role": "assistant", "content": [no_id]}])
    )
    assert error.param == "messages.1.content.0.id"
    bad_input = {"type": "tool_use", "id": "t1", "name": "f", "input": "city=Paris"}
    error = refusal(
        body(
            messages=[
                {"role": "user", "content": "x"},
                {"role": "assistant", "content": [bad_input]},
            ]
        )
    )
    assert error.message == "messages.1.content.0.input: must be an object"


@pytest.mark.parametrize(
    ("tools", "param", "message"),
    [
        ({"name": "f"}, "tools", "tools: must be an array of {name, description, input_schema}"),
        (
            [{"name": "f"}],
            "tools.0.input_schema",
            "tools.0.input_schema: field required (a JSON Schema object)",
        ),
        (
            [{"name": "bad name!", "input_schema": {}}],
            "tools.0.name",
            "tools.0.name: must match ^[a-zA-Z0-9_-]{1,64}$",
        ),
        (
            [{"type": "web_search_20250305", "name": "web_search"}],
            "tools.0.type",
            "tools.0.type: server tool 'web_search_20250305' is not supported; "
            "define a client tool with name and input_schema",
        ),
    ],
)
def test_it_refuses_invalid_tools(tools, param, message):
    error = refusal(body(tools=tools))
    assert (error.param, error.message) == (param, message)


@pytest.mark.parametrize(
    ("tools", "choice", "param", "message"),
    [
        (
            [WEATHER_TOOL],
            {"type": "sometimes"},
            "tool_choice.type",
            "tool_choice.type: must be one of 'auto', 'any', 'tool', 'none'",
        ),
        ([WEATHER_TOOL], "auto", "tool_choice", "tool_choice: must be an object with 'type'"),
        (
            [WEATHER_TOOL],
            {"type": "tool"},
            "tool_choice.name",
            "tool_choice.name: field required when type is 'tool'",
        ),
        (
            [WEATHER_TOOL],
            {"type": "tool", "name": "get_time"},
            "tool_choice.name",
            "tool_choice.name: 'get_time' is not one of the defined tools",
        ),
        (None, {"type": "any"}, "tool_choice", "tool_choice: type 'any' requires 'tools'"),
    ],
)
def test_it_refuses_invalid_tool_choice(tools, choice, param, message):
    error = refusal(body(tools=tools, tool_choice=choice))
    assert (error.param, error.message) == (param, message)
