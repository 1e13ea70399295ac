"""The /v1/messages/count_tokens estimate: ceil(characters / 4)."""

import orjson
import pytest

from gateway.anthropic import AnthropicRequestError, count_tokens_estimate, count_tokens_response


def test_it_counts_four_characters_per_token_rounding_up():
    body = {"model": "dragon", "messages": [{"role": "user", "content": "abcdefghi"}]}  # 9 chars
    assert count_tokens_estimate(body) == 3


def test_it_does_not_require_max_tokens():
    body = {"model": "dragon", "messages": [{"role": "user", "content": "abcd"}]}
    assert count_tokens_response(body) == {"input_tokens": 1}


def test_it_counts_system_text_tool_traffic_and_tool_definitions():
    tool = {"name": "f", "description": "d", "input_schema": {"type": "object"}}
    body = {
        "model": "dragon",
        "system": [{"type": "text", "text": "S" * 10, "cache_control": {"type": "ephemeral"}}],
        "tools": [tool],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "U" * 7}]},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "A" * 3},
                    {"type": "tool_use", "id": "t1", "name": "f", "input": {"x": 1}},
                ],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "R" * 5}],
            },
        ],
    }
    definition = orjson.dumps(
        {"name": "f", "description": "d", "parameters": {"type": "object"}}
    ).decode()
    chars = 10 + 7 + 3 + len("f") + len('{"x":1}') + 5 + len(definition)
    assert count_tokens_estimate(body) == -(-chars // 4)


def test_it_validates_like_a_messages_request():
    with pytest.raises(AnthropicRequestError) as caught:
        count_tokens_estimate({"model": "dragon", "messages": []})
    assert caught.value.param == "messages"
