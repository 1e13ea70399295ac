"""OpenAI chat.completion JSON → Anthropic Message JSON."""

import pytest

from gateway.anthropic import AnthropicResponseError, openai_response_to_anthropic


def completion(message, finish_reason="stop", **extra):
    return {
        "id": "chatcmpl-9xYz",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "dragon-upstream-7b",
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
        "usage": {"prompt_tokens": 21, "completion_tokens": 7, "total_tokens": 28},
        **extra,
    }


def test_it_translates_a_text_completion():
    resp = completion({"role": "assistant", "content": "Hello there."})
    assert openai_response_to_anthropic(resp, model="claude-sonnet-4-6") == {
        "id": "msg_9xYz",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-6",
        "content": [{"type": "text", "text": "Hello there."}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 21, "output_tokens": 7},
    }


def test_it_translates_tool_calls_into_tool_use_blocks_with_ids_verbatim():
    message = {
        "role": "assistant",
        "content": "Checking.",
        "tool_calls": [
            {
                "id": "call_abc123",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            },
            {
                "id": "call_def456",
                "type": "function",
                "function": {"name": "get_time", "arguments": ""},
            },
        ],
    }
    out = openai_response_to_anthropic(completion(message, "tool_calls"), model="dragon")
    assert out["content"] == [
        {"type": "text", "text": "Checking."},
        {
            "type": "tool_use",
            "id": "call_abc123",
            "name": "get_weather",
            "input": {"city": "Paris"},
        },
        {"type": "tool_use", "id": "call_def456", "name": "get_time", "input": {}},
    ]
    assert out["stop_reason"] == "tool_use"


def test_a_tool_call_with_null_content_has_only_tool_use_blocks():
    message = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
        ],
    }
    out = openai_response_to_anthropic(completion(message, "tool_calls"), model="dragon")
    assert out["content"] == [{"type": "tool_use", "id": "c1", "name": "f", "input": {}}]


def test_tool_calls_ended_with_stop_still_report_tool_use():
    message = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
        ],
    }
    out = openai_response_to_anthropic(completion(message, "stop"), model="dragon")
    assert out["stop_reason"] == "tool_use"


@pytest.mark.parametrize(
    ("finish_reason", "stop_reason"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("content_filter", "refusal"),
        (None, "end_turn"),
        ("something_new", "end_turn"),
    ],
)
def test_it_maps_finish_reason_to_stop_reason(finish_reason, stop_reason):
    resp = completion({"role": "assistant", "content": "x"}, finish_reason)
    assert openai_response_to_anthropic(resp, model="dragon")["stop_reason"] == stop_reason


def test_an_openai_refusal_becomes_text():
    resp = completion({"role": "assistant", "content": None, "refusal": "I can't help."}, "stop")
    assert openai_response_to_anthropic(resp, model="dragon")["content"] == [
        {"type": "text", "text": "I can't help."}
    ]


def test_empty_content_gives_an_empty_content_list():
    resp = completion({"role": "assistant", "content": ""})
    assert openai_response_to_anthropic(resp, model="dragon")["content"] == []


def test_missing_usage_and_id_fall_back_to_zero_and_a_fresh_id():
    resp = completion({"role": "assistant", "content": "x"})
    del resp["usage"], resp["id"]
    out = openai_response_to_anthropic(resp, model="dragon")
    assert out["usage"] == {"input_tokens": 0, "output_tokens": 0}
    assert out["id"].startswith("msg_")
    assert len(out["id"]) == len("msg_") + 32


def test_it_refuses_a_completion_without_choices():
    with pytest.raises(AnthropicResponseError, match="no choices"):
        openai_response_to_anthropic({"id": "chatcmpl-1", "choices": []}, model="dragon")


def test_it_refuses_tool_arguments_that_are_not_a_json_object():
    message = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"city": '}}
        ],
    }
    with pytest.raises(AnthropicResponseError, match="not a JSON object"):
        openai_response_to_anthropic(completion(message, "tool_calls"), model="dragon")
