"""The shape limits every /v1 body is held to: nesting depth, array lengths and integer bounds.

Both dialects (gateway/request.py, gateway/anthropic/request.py) check against these numbers, so
no body can reach code that recurses, serialises or iterates without bound (docs/gateway.md,
"Body limits"). orjson itself refuses more than 1,024 levels, but serialising more than 254
raises, so a deeply nested body has to be refused by us before anything re-encodes it.
"""

from __future__ import annotations

# Levels of arrays and objects, the body itself being level 1. A JSON Schema in `parameters` or
# `input_schema` uses two levels per nested property, so 64 leaves room for 30 of those.
MAX_DEPTH = 64
MAX_MESSAGES = 2_048  # messages per request (both dialects)
MAX_TOOLS = 128  # tool definitions per request (OpenAI's own cap)
MAX_STOP = 4  # stop strings (OpenAI's cap; Anthropic's stop_sequences become them)
MAX_CONTENT_PARTS = 256  # content parts or blocks per message, blocks in `system`, tool results
MAX_TOOL_CALLS = 128  # tool calls per assistant message (tool_use blocks on /v1/messages)
MAX_TOKENS = 10_000_000  # max_tokens, max_completion_tokens, thinking.budget_tokens
MAX_CHOICES = 8  # n
MAX_TOP_LOGPROBS = 20  # OpenAI's cap
MAX_LOGIT_BIAS = 1_024  # entries in logit_bias
LOGIT_BIAS_RANGE = 100  # each bias within -100..100, as OpenAI says
MAX_METADATA = 16  # metadata pairs (OpenAI's cap)
MAX_MODEL_CHARS = 256  # a model name longer than this is no catalogue's
MAX_TOP_K = 1_000_000
INT64 = 1 << 63  # `seed` is a signed 64-bit integer


def too_deep(value: object, limit: int = MAX_DEPTH) -> bool:
    """Whether the arrays and objects of parsed JSON nest more than `limit` levels (the outermost
    counts as 1). Level by level, without recursion, so a thousand levels cost a loop, not a stack;
    exact type checks, because orjson builds plain dicts and lists (why: docs/performance.md)."""
    level = [value] if type(value) is dict or type(value) is list else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        deeper: list = []
        push = deeper.append
        for node in level:
            for item in node.values() if type(node) is dict else node:
                kind = type(item)
                if kind is dict or kind is list:
                    push(item)
        level = deeper
    return False


def is_int(value: object) -> bool:
    """A JSON integer (orjson reads integers beyond 64 bits as floats, so those are not)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> bool:
    """A JSON number: never a boolean, never NaN or infinite (orjson refuses both)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def int_in(value: object, low: int, high: int) -> bool:
    return is_int(value) and low <= value <= high  # type: ignore[operator]
