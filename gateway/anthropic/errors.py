"""Anthropic-shaped error bodies and the exceptions the translators raise."""

from __future__ import annotations

import orjson

# Anthropic pairs each HTTP status with one `error.type` (docs.claude.com/en/api/errors). Our statuses
# stay our own (insufficient balance is 403, per Dragonfly's contract); only the body changes shape.
# Anthropic itself reports an exhausted balance as 402 billing_error: see docs/anthropic.md.
ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}


class AnthropicRequestError(ValueError):
    """An Anthropic Messages request we refuse with 400 invalid_request_error; `param` names the field."""

    status = 400

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class AnthropicResponseError(ValueError):
    """An upstream OpenAI answer that has no faithful Anthropic form (the gateway answers 502)."""


def anthropic_error_type(status: int) -> str:
    """Anthropic's `error.type` for one of our HTTP statuses; other 4xx are invalid_request_error."""
    if status in ERROR_TYPES:
        return ERROR_TYPES[status]
    return "api_error" if status >= 500 else "invalid_request_error"


def anthropic_error_dict(message: str, error_type: str, request_id: str | None = None) -> dict:
    body: dict = {"type": "error", "error": {"type": error_type, "message": message}}
    if request_id is not None:
        body["request_id"] = request_id
    return body


def anthropic_error_body(
    status: int,
    message: str,
    *,
    error_type: str | None = None,
    request_id: str | None = None,
) -> bytes:
    """`{"type": "error", "error": {"type", "message"}}`, the type derived from `status` unless given."""
    return orjson.dumps(
        anthropic_error_dict(message, error_type or anthropic_error_type(status), request_id)
    )
