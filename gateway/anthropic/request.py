"""Anthropic Messages request → OpenAI chat.completions body, and the count_tokens estimate."""

from __future__ import annotations

import math
import re
from typing import Any

import orjson

from gateway.anthropic.errors import AnthropicRequestError
from gateway.body_limits import (
    MAX_CONTENT_PARTS,
    MAX_MESSAGES,
    MAX_MODEL_CHARS,
    MAX_STOP,
    MAX_TOKENS,
    MAX_TOOL_CALLS,
    MAX_TOOLS,
    MAX_TOP_K,
    int_in,
    is_int,
)

ROLES = ("user", "assistant")
# Upstreams speak OpenAI, which caps `stop` at 4 strings (gateway.request refuses more too).
MAX_STOP_SEQUENCES = MAX_STOP
# Anthropic and OpenAI both hold tool names to this pattern.
TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
# Assistant blocks that only carry the model's hidden reasoning: dropped on replay, never refused,
# so a conversation started elsewhere can continue here; their string fields, when present, are
# still held to their type.
DROPPED_ASSISTANT_BLOCKS = {"thinking": ("thinking", "signature"), "redacted_thinking": ("data",)}
CHARS_PER_TOKEN = 4


def _fail(param: str, problem: str) -> AnthropicRequestError:
    return AnthropicRequestError(f"{param}: {problem}", param)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _model(body: dict) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise _fail("model", "field required (a non-empty string)")
    if len(model) > MAX_MODEL_CHARS:
        raise _fail("model", f"must be at most {MAX_MODEL_CHARS} characters")
    return model.strip()


def _max_tokens(body: dict) -> int:
    if body.get("max_tokens") is None:
        raise _fail("max_tokens", "field required (a positive integer)")
    value = body["max_tokens"]
    if not is_int(value) or value < 1:
        raise _fail("max_tokens", "must be a positive integer")
    if value > MAX_TOKENS:
        raise _fail("max_tokens", f"must be at most {MAX_TOKENS:,}")
    return value


def _blocks(blocks: list, where: str) -> list:
    if len(blocks) > MAX_CONTENT_PARTS:
        raise _fail(where, f"at most {MAX_CONTENT_PARTS} content blocks are accepted")
    return blocks


def _optional(block: dict, field: str, kind: type, what: str, where: str) -> None:
    """A field that may be absent or null, else of one JSON type (str, bool or dict)."""
    value = block.get(field)
    if value is not None and not isinstance(value, kind):
        raise _fail(f"{where}.{field}" if where else field, f"must be {what}")


def _text_of(block: dict, where: str) -> str:
    text = block.get("text")
    if not isinstance(text, str):
        raise _fail(f"{where}.text", "field required (a string)")
    return text


def _block_type(block: object, where: str) -> str:
    if not isinstance(block, dict):
        raise _fail(where, "each content block must be an object with a 'type'")
    kind = block.get("type")
    if not isinstance(kind, str):
        raise _fail(f"{where}.type", "field required")
    return kind


def _unsupported(kind: str, where: str) -> AnthropicRequestError:
    if kind in ("image", "document"):
        return _fail(
            where,
            f"'{kind}' content blocks are not supported: Dragonfly's models take text only; "
            "send the content as text",
        )
    return _fail(where, f"unsupported content block type '{kind}'")


def _system(body: dict) -> list[dict]:
    system = body.get("system")
    if system is None:
        return []
    if isinstance(system, str):
        return [{"role": "system", "content": system}] if system else []
    if not isinstance(system, list):
        raise _fail("system", "must be a string or an array of text blocks")
    texts = []
    for index, block in enumerate(_blocks(system, "system")):
        where = f"system.{index}"
        if _block_type(block, where) != "text":
            raise _fail(f"{where}.type", "system blocks must be of type 'text'")
        texts.append(_text_of(block, where))
    return [{"role": "system", "content": "\n".join(texts)}] if texts else []


def _tool_result(block: dict, where: str, expected_ids: set[str]) -> dict:
    tool_use_id = block.get("tool_use_id")
    if not isinstance(tool_use_id, str) or not tool_use_id:
        raise _fail(f"{where}.tool_use_id", "field required (the id of the tool_use it answers)")
    if tool_use_id not in expected_ids:
        raise _fail(
            f"{where}.tool_use_id",
            f"'{tool_use_id}' does not match a tool_use block in the previous assistant message",
        )
    content = block.get("content")
    if content is None:
        text = ""
    elif isinstance(content, str):
        text = content
    elif isinstance(content, list):
        parts = []
        for index, part in enumerate(_blocks(content, f"{where}.content")):
            part_where = f"{where}.content.{index}"
            kind = _block_type(part, part_where)
            if kind != "text":
                raise _unsupported(kind, part_where)
            parts.append(_text_of(part, part_where))
        text = "\n".join(parts)
    else:
        raise _fail(f"{where}.content", "must be a string or an array of text blocks")
    # is_error has no OpenAI counterpart; the result text itself reaches the model.
    _optional(block, "is_error", bool, "a boolean", where)
    return {"role": "tool", "tool_call_id": tool_use_id, "content": text}


def _user_turn(blocks: list, where: str, expected_ids: set[str]) -> list[dict]:
    """Tool results first (OpenAI wants them right after the assistant's tool_calls), then text."""
    results: list[dict] = []
    texts: list[str] = []
    for index, block in enumerate(_blocks(blocks, f"{where}.content")):
        block_where = f"{where}.content.{index}"
        kind = _block_type(block, block_where)
        if kind == "text":
            texts.append(_text_of(block, block_where))
        elif kind == "tool_result":
            results.append(_tool_result(block, block_where, expected_ids))
        elif kind == "tool_use":
            raise _fail(block_where, "tool_use blocks belong in assistant messages")
        else:
            raise _unsupported(kind, block_where)
    answered = {result["tool_call_id"] for result in results}
    if expected_ids - answered:
        missing = ", ".join(sorted(expected_ids - answered))
        raise _fail(
            f"{where}.content",
            f"tool_use ids were found without tool_result blocks immediately after: {missing}",
        )
    if texts:
        results.append({"role": "user", "content": "\n".join(texts)})
    return results


def _assistant_turn(blocks: list, where: str) -> dict:
    texts: list[str] = []
    calls: list[dict] = []
    for index, block in enumerate(_blocks(blocks, f"{where}.content")):
        block_where = f"{where}.content.{index}"
        kind = _block_type(block, block_where)
        if kind == "text":
            texts.append(_text_of(block, block_where))
        elif kind == "tool_use":
            if len(calls) == MAX_TOOL_CALLS:
                raise _fail(
                    f"{where}.content", f"at most {MAX_TOOL_CALLS} tool_use blocks are accepted"
                )
            calls.append(_tool_call(block, block_where))
        elif kind == "tool_result":
            raise _fail(block_where, "tool_result blocks belong in user messages")
        elif kind in DROPPED_ASSISTANT_BLOCKS:
            for field in DROPPED_ASSISTANT_BLOCKS[kind]:
                _optional(block, field, str, "a string", block_where)
        else:
            raise _unsupported(kind, block_where)
    message: dict[str, Any] = {"role": "assistant", "content": "\n".join(texts) if texts else None}
    if calls:
        message["tool_calls"] = calls
    elif message["content"] is None:
        message["content"] = ""
    return message


def _tool_call(block: dict, where: str) -> dict:
    call_id = block.get("id")
    if not isinstance(call_id, str) or not call_id:
        raise _fail(f"{where}.id", "field required (a string)")
    name = block.get("name")
    if not isinstance(name, str) or not name:
        raise _fail(f"{where}.name", "field required (a string)")
    arguments = block.get("input", {})
    if not isinstance(arguments, dict):
        raise _fail(f"{where}.input", "must be an object")
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": orjson.dumps(arguments).decode()},
    }


def _messages(body: dict) -> list[dict]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _fail("messages", "field required (a non-empty array of messages)")
    if len(messages) > MAX_MESSAGES:
        raise _fail("messages", f"at most {MAX_MESSAGES} messages are accepted")
    out: list[dict] = []
    expected_ids: set[str] = set()  # tool_use ids the previous assistant turn is waiting on
    for index, message in enumerate(messages):
        where = f"messages.{index}"
        if not isinstance(message, dict):
            raise _fail(where, "each message must be an object with 'role' and 'content'")
        role = message.get("role")
        if role not in ROLES:
            hint = " (put system instructions in the top-level 'system' field)"
            raise _fail(
                f"{where}.role",
                "must be 'user' or 'assistant'" + (hint if role == "system" else ""),
            )
        content = message.get("content")
        if expected_ids and (role == "assistant" or not isinstance(content, list)):
            missing = ", ".join(sorted(expected_ids))
            raise _fail(
                where,
                f"tool_use ids were found without tool_result blocks immediately after: {missing}",
            )
        if isinstance(content, str):
            out.append({"role": role, "content": content})
            continue
        if not isinstance(content, list) or not content:
            raise _fail(
                f"{where}.content", "must be a string or a non-empty array of content blocks"
            )
        if role == "user":
            out.extend(_user_turn(content, where, expected_ids))
            expected_ids = set()
        else:
            assistant = _assistant_turn(content, where)
            out.append(assistant)
            expected_ids = {call["id"] for call in assistant.get("tool_calls", [])}
    return out


def _unit_interval(body: dict, field: str) -> float | None:
    value = body.get(field)
    if value is None:
        return None
    if not _is_number(value) or not 0 <= value <= 1:
        raise _fail(field, "must be a number between 0 and 1")
    return value


def _stop_sequences(body: dict) -> list[str]:
    value = body.get("stop_sequences")
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise _fail("stop_sequences", "must be an array of non-empty strings")
    if len(value) > MAX_STOP_SEQUENCES:
        raise _fail("stop_sequences", f"at most {MAX_STOP_SEQUENCES} stop sequences are supported")
    return value


def _tools(body: dict) -> list[dict]:
    tools = body.get("tools")
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise _fail("tools", "must be an array of {name, description, input_schema}")
    if len(tools) > MAX_TOOLS:
        raise _fail("tools", f"at most {MAX_TOOLS} tools are accepted")
    out = []
    for index, tool in enumerate(tools):
        where = f"tools.{index}"
        if not isinstance(tool, dict):
            raise _fail(where, "each tool must be an object with 'name' and 'input_schema'")
        kind = tool.get("type")
        if kind not in (None, "custom"):
            raise _fail(
                f"{where}.type",
                f"server tool '{kind}' is not supported; define a client tool with name and input_schema",
            )
        name = tool.get("name")
        if not isinstance(name, str) or not TOOL_NAME.match(name):
            raise _fail(f"{where}.name", "must match ^[a-zA-Z0-9_-]{1,64}$")
        description = tool.get("description")
        if description is not None and not isinstance(description, str):
            raise _fail(f"{where}.description", "must be a string")
        schema = tool.get("input_schema")
        if not isinstance(schema, dict):
            raise _fail(f"{where}.input_schema", "field required (a JSON Schema object)")
        function: dict[str, Any] = {"name": name}
        if description:
            function["description"] = description
        function["parameters"] = schema
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(body: dict, tool_names: list[str], out: dict) -> None:
    choice = body.get("tool_choice")
    if choice is None:
        return
    if not isinstance(choice, dict):
        raise _fail("tool_choice", "must be an object with 'type'")
    kind = choice.get("type")
    if kind not in ("auto", "any", "tool", "none"):
        raise _fail("tool_choice.type", "must be one of 'auto', 'any', 'tool', 'none'")
    if not tool_names:
        if kind in ("any", "tool"):
            raise _fail("tool_choice", f"type '{kind}' requires 'tools'")
        return  # auto/none without tools mean nothing to an OpenAI upstream
    if kind == "tool":
        name = choice.get("name")
        if not isinstance(name, str) or not name:
            raise _fail("tool_choice.name", "field required when type is 'tool'")
        if name not in tool_names:
            raise _fail("tool_choice.name", f"'{name}' is not one of the defined tools")
        out["tool_choice"] = {"type": "function", "function": {"name": name}}
    else:
        out["tool_choice"] = {"auto": "auto", "any": "required", "none": "none"}[kind]
    disable_parallel = choice.get("disable_parallel_tool_use")
    if disable_parallel is not None and not isinstance(disable_parallel, bool):
        raise _fail("tool_choice.disable_parallel_tool_use", "must be a boolean")
    if disable_parallel and kind != "none":
        out["parallel_tool_calls"] = False


def _dropped_fields(body: dict) -> None:
    """Fields with no OpenAI counterpart are dropped, but a wrong type is still the buyer's to fix."""
    metadata = body.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise _fail("metadata", "must be an object")
        _optional(metadata, "user_id", str, "a string", "metadata")
    thinking = body.get("thinking")
    if thinking is not None:
        if not isinstance(thinking, dict) or not isinstance(thinking.get("type"), str):
            raise _fail("thinking", "must be an object with a string 'type'")
        budget = thinking.get("budget_tokens")
        if budget is not None and not int_in(budget, 0, MAX_TOKENS):
            raise _fail(
                "thinking.budget_tokens", f"must be a non-negative integer (at most {MAX_TOKENS:,})"
            )
    _optional(body, "service_tier", str, "a string", "")


def _translate(body: object, *, require_max_tokens: bool) -> dict:
    if not isinstance(body, dict):
        raise AnthropicRequestError("Request body must be a JSON object.", None)
    out: dict[str, Any] = {"model": _model(body)}
    if require_max_tokens:
        out["max_tokens"] = _max_tokens(body)
    out["messages"] = _system(body) + _messages(body)
    for field in ("temperature", "top_p"):
        value = _unit_interval(body, field)
        if value is not None:
            out[field] = value
    top_k = body.get("top_k")
    if top_k is not None and (not is_int(top_k) or top_k < 0):
        raise _fail("top_k", "must be a non-negative integer")
    if top_k is not None and top_k > MAX_TOP_K:
        raise _fail("top_k", f"must be at most {MAX_TOP_K:,}")
    _dropped_fields(body)
    stop = _stop_sequences(body)
    if stop:
        out["stop"] = stop
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise _fail("stream", "must be a boolean")
    if stream:
        # The closing message_delta needs the usage chunk whatever the buyer asked for.
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    tools = _tools(body)
    if tools:
        out["tools"] = tools
    _tool_choice(body, [tool["function"]["name"] for tool in tools], out)
    return out


def anthropic_request_to_openai(body: object) -> dict:
    """An OpenAI chat.completions body for an Anthropic Messages request, or AnthropicRequestError.

    Dropped without error: top_k (OpenAI has none), metadata, thinking, service_tier, cache_control
    anywhere, thinking blocks in assistant turns, tool_result.is_error. Refused: image and document
    blocks, server tools, more than 4 stop_sequences. Tool ids pass through verbatim.
    """
    return _translate(body, require_max_tokens=True)


def count_tokens_estimate(body: object) -> int:
    """Input tokens for /v1/messages/count_tokens: ceil(characters / 4).

    Characters are counted over the system prompt, every text block, tool_use inputs and tool_result
    contents (as sent upstream) and the tool definitions (name, description, input_schema as JSON).
    The body is validated like a Messages request, except that max_tokens is not required.
    """
    translated = _translate(body, require_max_tokens=False)
    chars = 0
    for message in translated["messages"]:
        chars += len(message.get("content") or "")
        for call in message.get("tool_calls", []):
            chars += len(call["function"]["name"]) + len(call["function"]["arguments"])
    for tool in translated.get("tools", []):
        chars += len(orjson.dumps(tool["function"]).decode())
    return math.ceil(chars / CHARS_PER_TOKEN)


def count_tokens_response(body: object) -> dict:
    """The /v1/messages/count_tokens answer: `{"input_tokens": n}`."""
    return {"input_tokens": count_tokens_estimate(body)}
