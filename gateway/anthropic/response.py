"""OpenAI chat.completion JSON → Anthropic Message JSON, and the mappings the stream shares."""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from gateway.anthropic.errors import AnthropicResponseError

STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def anthropic_message_id(openai_id: object) -> str:
    """`chatcmpl-abc` → `msg_abc`; a fresh `msg_…` when the upstream sent no id."""
    if isinstance(openai_id, str) and openai_id:
        rest = openai_id.removeprefix("chatcmpl-")
        return rest if rest.startswith("msg_") else f"msg_{rest}"
    return f"msg_{uuid.uuid4().hex}"


def anthropic_stop_reason(finish_reason: object, *, has_tool_use: bool) -> str:
    """OpenAI's finish_reason as an Anthropic stop_reason.

    Some OpenAI-compatible upstreams answer tool calls with finish_reason "stop" (or none at all);
    Anthropic clients run their tool loop on stop_reason "tool_use", so tool calls win over those.
    OpenAI does not say which stop sequence matched, so "stop_sequence" is never produced.
    """
    if has_tool_use and finish_reason in (None, "stop", "tool_calls", "function_call"):
        return "tool_use"
    if isinstance(finish_reason, str) and finish_reason in STOP_REASONS:
        return STOP_REASONS[finish_reason]
    return "end_turn"


def anthropic_usage(usage: object) -> dict[str, Any]:
    """`{prompt_tokens, completion_tokens}` → `{input_tokens, output_tokens}` (0 when absent);
    the gateway's `cost` rides along as it is (gateway/answer_cost.py)."""
    usage = usage if isinstance(usage, dict) else {}
    counts: dict[str, Any] = {
        "input_tokens": _count(usage.get("prompt_tokens")),
        "output_tokens": _count(usage.get("completion_tokens")),
    }
    if "cost" in usage:
        counts["cost"] = usage["cost"]
    return counts


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def tool_input(arguments: object) -> dict:
    """A tool call's JSON arguments as the object Anthropic's tool_use.input must be."""
    if isinstance(arguments, dict):
        return arguments
    if arguments is None or arguments == "":
        return {}
    if isinstance(arguments, str):
        try:
            parsed = orjson.loads(arguments)
        except orjson.JSONDecodeError:
            parsed = None
        if isinstance(parsed, dict):
            return parsed
    raise AnthropicResponseError(
        f"upstream tool call arguments are not a JSON object: {arguments!r}"
    )


def openai_response_to_anthropic(resp: dict, *, model: str) -> dict:
    """The Anthropic Message for an OpenAI chat.completion; `model` is the name the buyer asked for.

    Raises AnthropicResponseError when the completion has no choice or a tool call's arguments are
    not a JSON object (there is no faithful Anthropic form; the gateway answers 502 api_error).
    """
    choices = resp.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise AnthropicResponseError("upstream completion has no choices")
    choice = choices[0]
    message = choice.get("message")
    if not isinstance(message, dict):
        message = {}
    content: list[dict[str, Any]] = []
    text = message.get("content")
    if not isinstance(text, str) or not text:
        # OpenAI puts a declined answer in `refusal` with content null.
        text = message.get("refusal")
    if isinstance(text, str) and text:
        content.append({"type": "text", "text": text})
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        content.append(
            {
                "type": "tool_use",
                "id": call.get("id") or f"toolu_{uuid.uuid4().hex}",
                "name": function.get("name") or "",
                "input": tool_input(function.get("arguments")),
            }
        )
    has_tool_use = any(block["type"] == "tool_use" for block in content)
    return {
        "id": anthropic_message_id(resp.get("id")),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": anthropic_stop_reason(
            choice.get("finish_reason"), has_tool_use=has_tool_use
        ),
        "stop_sequence": None,
        "usage": anthropic_usage(resp.get("usage")),
    }
