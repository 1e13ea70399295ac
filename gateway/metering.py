"""Counting units: the bounds a hold must cover, the prompt estimate, and delivered tokens.

A hold is an upper bound the upstream cannot exceed (docs/billing-policy.md, "Hold sizing"):
- the prompt is bounded by the bytes of the body's JSON: a byte-level tokenizer's tokens each
  cover at least one UTF-8 byte, so no script (CJK, emoji, digits) can take more, and every token a
  provider puts in the prompt (messages, tool definitions, a response schema, the chat template's
  markers) comes from that JSON, whose braces, quotes and keys outweigh the template's markers;
- the output is bounded by the cap sent upstream as `max_tokens` on every request (the buyer's, or
  DEFAULT_OUTPUT_CAP when they set none, at most the model's context), times `n` choices.
Content parts a model cannot take (images without the "vision" capability, audio, files) are
refused before anything is held.

The estimate (4 characters per token, the simulator's and a common rough rule) only bills a prompt
whose upstream reported no usage and sizes the tokens/min pre-check. When the upstream reports no
usage, a stream is billed one token per content-carrying chunk delivered to the buyer
(OpenAI-compatible providers stream about one token per chunk), a plain response 4 characters per
token of its text (docs/gateway.md).
"""

from __future__ import annotations

import math

import orjson

from billing.money import cost_nusd
from gateway.errors import bad_request

# Output tokens per choice a request may produce when it sets no max_tokens (sent upstream).
DEFAULT_OUTPUT_CAP = 8192
# Tokens a chat template adds once per conversation (the assistant's opening marker and the like).
TEMPLATE_TOKENS = 16
# The most tokens a provider counts for one image (a vision model's largest tiling, with margin).
IMAGE_TOKENS = 16_384
# Content part types beyond text, and the capability a model needs to take them.
_PART_CAPABILITY = {"image_url": "vision"}


def tokens_from_chars(chars: int) -> int:
    return max(1, math.ceil(chars / 4))


def prompt_token_bound(payload: dict, capabilities: list[str] | tuple[str, ...]) -> int:
    """The most prompt tokens any provider can count for this (validated) chat body, or a 400 for
    a content part the model cannot take."""
    images = 0
    for index, message in enumerate(payload["messages"]):
        content = message.get("content")
        if not isinstance(content, list):
            continue
        for part_index, part in enumerate(content):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text":
                continue
            needed = _PART_CAPABILITY.get(kind) if isinstance(kind, str) else None
            if needed is None or needed not in capabilities:
                raise bad_request(
                    f"'messages[{index}].content[{part_index}]' is a {kind!r} part, which this "
                    "model does not take: send text parts only (GET /v1/models lists each "
                    "model's capabilities)."
                )
            images += 1
    return len(orjson.dumps(payload)) + TEMPLATE_TOKENS + images * IMAGE_TOKENS


def choices(payload: dict) -> int:
    """How many answers the body asks for (`n`, validated by gateway.request)."""
    n = payload.get("n")
    return n if isinstance(n, int) and not isinstance(n, bool) and n > 1 else 1


def output_cap(max_tokens: int | None, context_tokens: int | None) -> int:
    """Output tokens per choice: sent upstream as max_tokens, so the upstream cannot exceed it."""
    cap = max_tokens if max_tokens is not None else DEFAULT_OUTPUT_CAP
    if context_tokens:
        cap = min(cap, context_tokens)
    return cap


def speech_character_bound(text: str) -> int:
    """The most characters a speech provider bills for `text`: its UTF-8 bytes (MiniMax counts a
    character outside ASCII, a Chinese one say, as two; each takes at least two bytes)."""
    return len(text.encode())


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
