"""Every /v1 failure as one exception type, rendered in the seed's body {"error": {message, type, code}}.

The seed fixes the body to exactly three fields. Two documented exceptions (docs/gateway.md): the 503
market_unavailable error adds "constraints" (listings each filter removed), and nothing else ever.
The request id travels in the X-DF-Market-Request-Id header, and inside the message of 500 and 502.
"""

from __future__ import annotations

import orjson

ERROR_TYPES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "bad_request",
    414: "bad_request",
    429: "rate_limit_exceeded",
    431: "bad_request",
    500: "internal_error",
    502: "upstream_error",
    503: "market_unavailable",
}

NO_ELIGIBLE_SELLER = "No eligible seller channel was healthy enough for the current constraints."


def error_body(status: int, message: str, **extra) -> bytes:
    error = {"message": message, "type": ERROR_TYPES.get(status, "internal_error"), "code": status}
    error.update(extra)
    return orjson.dumps({"error": error})


class GatewayError(Exception):
    """A refusal to show the buyer. `headers` are added to the response (e.g. Retry-After)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        headers: list[tuple[bytes, bytes]] | None = None,
        extra: dict | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or []
        self.extra = extra or {}

    def public_message(self, request_id: str) -> str:
        # 503 keeps the seed's exact sentence; the id is still in X-DF-Market-Request-Id.
        if self.status in (500, 502):
            return f"{self.message} (request id {request_id})"
        return self.message

    def body(self, request_id: str) -> bytes:
        return error_body(self.status, self.public_message(request_id), **self.extra)


def bad_request(message: str) -> GatewayError:
    return GatewayError(400, message)
