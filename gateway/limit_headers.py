"""The rate-limit headers of every /v1 response the rate-limit step (trade.rate_limit) did not
already answer: errors before it (400, 403, 404, 405, 413 …) and GET /v1/models.

With a live key (auth.identify put its record in the scope), the request counts as one request
and no tokens against the account and the key, as a billed request does, but is never turned
into a 429: it is answered with its own status, its headers showing what is left (0 once over).
Without one, the client's address (client_limits.py): 401 (counted by auth), 404 on an unknown
path and 405 count as its failures; anything else (GET /v1/models without a key, its 404 for an
unknown model) reports them without counting. The headers themselves are written by limits.headers, the one writer.
"""

from __future__ import annotations

import logging

from gateway import auth, client_limits, limits
from gateway.errors import GatewayError
from gateway.response import Response

logger = logging.getLogger("gateway")

_MARK = b"x-ratelimit-limit-requests"


def _has(headers) -> bool:
    return any(name == _MARK for name, _ in headers)


async def stamp(
    out: Response, scope: dict, error: GatewayError | None = None, *, unrouted: bool = False
) -> None:
    """Add the rate-limit headers to `out` unless it (or `error`) already carries them.
    `unrouted`: a path or method the gateway does not serve (404, 405), counted like a 401."""
    if _has(out.headers) or (error is not None and _has(error.headers)):
        return
    try:
        record = scope.get(auth.KEY_SCOPE)
        if record is not None:
            verdict = await limits.acquire(limits.scopes_for(record), 0, refuse=False)
        else:
            address = client_limits.address(scope)
            if unrouted:
                verdict = await client_limits.count(address, refuse=False)
            else:
                verdict = await client_limits.check(address, refuse=False)
    except Exception:  # headers are a report: never the reason an answer fails
        logger.exception("rate-limit headers for %s failed", scope.get("path"))
        return
    out.add(limits.headers(verdict))
