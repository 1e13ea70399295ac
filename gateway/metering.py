"""Counting units: the prompt estimate, the worst case a hold must cover, and delivered tokens.

Estimates use 4 characters per token (the simulator's and a common rough rule). When the upstream
reports no usage, a stream is billed one token per content-carrying chunk delivered to the buyer
(OpenAI-compatible providers stream about one token per chunk), a plain response 4 characters per
token of its text (docs/gateway.md).
"""

from __future__ import annotations

import math

from billing.money import cost_nusd

# Output tokens a hold covers when the request sets no max_tokens (docs/gateway.md, "Hold sizing").
DEFAULT_OUTPUT_CAP = 8192


def tokens_from_chars(chars: int) -> int:
    return max(1, math.ceil(chars / 4))


def output_allowance(max_tokens: int | None, context_tokens: int | None, prompt_tokens: int) -> int:
    """The most output tokens this request can be charged for, as far as we can know up front."""
    allowance = max_tokens if max_tokens is not None else DEFAULT_OUTPUT_CAP
    if context_tokens:
        allowance = min(allowance, max(1, context_tokens - prompt_tokens))
    return allowance


def worst_case_nusd(
    *, prompt_tokens: int, output_tokens: int, ask_input_nusd: int, ask_output_nusd: int
) -> int:
    return cost_nusd(units=prompt_tokens, price_per_million_nusd=ask_input_nusd) + cost_nusd(
        units=output_tokens, price_per_million_nusd=ask_output_nusd
    )


def message_chars(message: dict) -> int:
    """Characters of an assistant message's text and tool-call arguments (plain responses)."""
    chars = 0
    content = message.get("content")
    if isinstance(content, str):
        chars += len(content)
    for call in message.get("tool_calls") or []:
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            chars += len(function.get("name") or "") + len(function.get("arguments") or "")
    return chars


def chunk_carries_content(chunk: dict) -> bool:
    """A stream chunk that delivers text or tool-call pieces (what the buyer pays for)."""
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta") or {}
        if delta.get("content") or delta.get("tool_calls") or delta.get("reasoning_content"):
            return True
    return False
