"""The chat.completions body's fields beyond the prompt text, each checked for its JSON type.

Every field the gateway or an upstream reads, in every position (message fields, tool calls,
content parts, the other parameters), is refused with a 400 naming it by its index path
(`'messages[3].tool_calls[0].function.arguments' ...`) rather than reaching code that would fail
on it. Unknown fields pass through untouched. Limits are in body_limits.py.
"""

from __future__ import annotations

from gateway.body_limits import (
    INT64,
    LOGIT_BIAS_RANGE,
    MAX_CHOICES,
    MAX_CONTENT_PARTS,
    MAX_LOGIT_BIAS,
    MAX_METADATA,
    MAX_STOP,
    MAX_TOKENS,
    MAX_TOOL_CALLS,
    MAX_TOP_LOGPROBS,
    int_in,
    is_number,
)
from gateway.errors import bad_request


def number_field(data: dict, field: str, low: float, high: float) -> None:
    if field not in data or data[field] is None:
        return
    value = data[field]
    if not is_number(value) or not low <= value <= high:
        raise bad_request(f"'{field}' must be a number between {low:g} and {high:g}.")


def int_field(data: dict, field: str, low: int, high: int, what: str) -> int | None:
    value = data.get(field)
    if value is None:
        return None
    if not int_in(value, low, high):
        raise bad_request(f"'{field}' must be {what}.")
    return value


def token_count(data: dict, field: str) -> int | None:
    value = int_field(data, field, 1, 1 << 64, "a positive integer")
    if value is not None and value > MAX_TOKENS:
        raise bad_request(f"'{field}' must be at most {MAX_TOKENS:,}.")
    return value


def typed(data: dict, field: str, kind: type, what: str, where: str = "") -> None:
    """A field that may be absent or null, else of one JSON type (str, bool, dict or list)."""
    value = data.get(field)
    if value is not None and not isinstance(value, kind):
        raise bad_request(f"'{where}{field}' must be {what}.")


def message_fields(message: dict, where: str) -> None:
    """A message's fields beyond role and content."""
    tool_calls(message.get("tool_calls"), f"{where}.tool_calls")
    for field in ("name", "tool_call_id", "refusal"):
        typed(message, field, str, "a string", f"{where}.")
    if message.get("function_call") is not None:
        function_call(message["function_call"], f"{where}.function_call")


def tool_calls(calls: object, where: str) -> None:
    if calls is None:
        return
    if not isinstance(calls, list):
        raise bad_request(f"'{where}' must be an array of tool calls.")
    if len(calls) > MAX_TOOL_CALLS:
        raise bad_request(f"'{where}' must hold at most {MAX_TOOL_CALLS} tool calls.")
    for index, call in enumerate(calls):
        at = f"{where}[{index}]"
        if not isinstance(call, dict):
            raise bad_request(f"'{at}' must be an object with 'id', 'type' and 'function'.")
        if not isinstance(call.get("id"), str):
            raise bad_request(f"'{at}.id' is required and must be a string.")
        if call.get("type") != "function":
            raise bad_request(f"'{at}.type' must be 'function'.")
        function_call(call.get("function"), f"{at}.function")


def function_call(function: object, where: str) -> None:
    """A called function: `{"name": string, "arguments": string of JSON}`."""
    if not isinstance(function, dict):
        raise bad_request(f"'{where}' must be an object with 'name' and 'arguments'.")
    for field in ("name", "arguments"):
        if not isinstance(function.get(field), str):
            raise bad_request(f"'{where}.{field}' is required and must be a string.")


# Content part types whose payload is checked here. Other types pass with a string `type` only:
# metering then refuses every part the model cannot take (docs/gateway.md, "Body limits").
_STRING_PARTS = {"text": "text", "refusal": "refusal"}  # the type -> its string field
# the type -> the (required, optional) string fields of its object, found under the type's name
_OBJECT_PARTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "image_url": (("url",), ("detail",)),
    "input_audio": (("data", "format"), ()),
    "file": ((), ("file_id", "file_data", "filename")),
}


def content_parts(parts: list, where: str) -> None:
    if len(parts) > MAX_CONTENT_PARTS:
        raise bad_request(f"'{where}' must hold at most {MAX_CONTENT_PARTS} parts.")
    for index, part in enumerate(parts):
        at = f"{where}[{index}]"
        if not isinstance(part, dict):
            raise bad_request(f"'{at}' must be an object with a 'type'.")
        kind = part.get("type")
        if not isinstance(kind, str):
            raise bad_request(f"'{at}.type' is required and must be a string.")
        if kind in _STRING_PARTS:
            field = _STRING_PARTS[kind]
            if not isinstance(part.get(field), str):
                raise bad_request(f"'{at}.{field}' is required and must be a string.")
        elif kind in _OBJECT_PARTS:
            value = part.get(kind)
            if not isinstance(value, dict):
                raise bad_request(f"'{at}.{kind}' is required and must be an object.")
            required, optional = _OBJECT_PARTS[kind]
            for name in required:
                if not isinstance(value.get(name), str):
                    raise bad_request(f"'{at}.{kind}.{name}' is required and must be a string.")
            for name in optional:
                typed(value, name, str, "a string", f"{at}.{kind}.")


def stop(data: dict) -> None:
    value = data.get("stop")
    if value is None or isinstance(value, str):
        return
    if (
        isinstance(value, list)
        and len(value) <= MAX_STOP
        and all(isinstance(item, str) for item in value)
    ):
        return
    raise bad_request(f"'stop' must be a string or an array of at most {MAX_STOP} strings.")


def options(data: dict) -> None:
    """The other parameters upstreams read: each of its JSON type, integers bounded."""
    int_field(data, "n", 1, MAX_CHOICES, f"an integer from 1 to {MAX_CHOICES}")
    int_field(data, "seed", -INT64, INT64 - 1, "a 64-bit integer")
    typed(data, "user", str, "a string")
    typed(data, "logprobs", bool, "a boolean")
    int_field(data, "top_logprobs", 0, MAX_TOP_LOGPROBS, f"an integer from 0 to {MAX_TOP_LOGPROBS}")
    response_format = data.get("response_format")
    if response_format is not None:
        if not isinstance(response_format, dict) or not isinstance(
            response_format.get("type"), str
        ):
            raise bad_request("'response_format' must be an object with a string 'type'.")
        typed(response_format, "json_schema", dict, "an object", "response_format.")
    stream_options = data.get("stream_options")
    if stream_options is not None:
        if not isinstance(stream_options, dict):
            raise bad_request("'stream_options' must be an object.")
        typed(stream_options, "include_usage", bool, "a boolean", "stream_options.")
    _logit_bias(data.get("logit_bias"))
    metadata = data.get("metadata")
    if metadata is not None and (
        not isinstance(metadata, dict)
        or len(metadata) > MAX_METADATA
        or not all(isinstance(value, str) for value in metadata.values())
    ):
        raise bad_request(f"'metadata' must be an object of at most {MAX_METADATA} string values.")


def _logit_bias(bias: object) -> None:
    if bias is None:
        return
    numbers = f"numbers from -{LOGIT_BIAS_RANGE} to {LOGIT_BIAS_RANGE}"
    what = f"an object of at most {MAX_LOGIT_BIAS} token ids (as strings) to {numbers}"
    if not isinstance(bias, dict) or len(bias) > MAX_LOGIT_BIAS:
        raise bad_request(f"'logit_bias' must be {what}.")
    for token, value in bias.items():
        if not (token.isascii() and token.isdigit() and len(token) <= 12):
            raise bad_request(
                f"'logit_bias' key '{token[:40]}' is not a token id: it must be {what}."
            )
        if not is_number(value) or not -LOGIT_BIAS_RANGE <= value <= LOGIT_BIAS_RANGE:
            raise bad_request(f"'logit_bias.{token}' must be one of the {numbers}.")
