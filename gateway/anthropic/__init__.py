"""Anthropic Messages API ↔ OpenAI chat.completions translation for /v1/messages (pure functions)."""

from gateway.anthropic.errors import (
    AnthropicRequestError,
    AnthropicResponseError,
    anthropic_error_body,
    anthropic_error_type,
)
from gateway.anthropic.request import (
    anthropic_request_to_openai,
    count_tokens_estimate,
    count_tokens_response,
)
from gateway.anthropic.response import openai_response_to_anthropic
from gateway.anthropic.stream import OpenAIToAnthropicStream, sse_event

__all__ = [
    "AnthropicRequestError",
    "AnthropicResponseError",
    "OpenAIToAnthropicStream",
    "anthropic_error_body",
    "anthropic_error_type",
    "anthropic_request_to_openai",
    "count_tokens_estimate",
    "count_tokens_response",
    "openai_response_to_anthropic",
    "sse_event",
]
