"""What a request's usage record keeps of its route: the model name sent, how it resolved, and each
listing it passed over on the way to the one that served, with why (GET /v1/generation).

It rides in the Settlement already written (no query of its own), on the Meter, so a stream's
checkpoint and the Redis copy of an unsettled settlement carry it too. It is bounded: at most
DRAGONFLY_MAX_ATTEMPTS entries, each a listing id, a provider slug and a reason from the fixed
vocabulary below; never upstream text (UpstreamError.reason is already ours, but a code a script
can match is what the record keeps).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.call import Route
    from gateway.upstream.base import UpstreamError
    from market.route_candidates import RouteCandidate

SERVED = "served"
FAILED_OVER = "failed_over"

# Why a listing was passed over. A failed upstream call with a status is "http_<status>".
AT_CAPACITY = "at_capacity"  # its concurrency cap was full when its turn came: not called
KEY_SUSPENDED = "key_suspended"  # its seller key was rejected since ranking: not called
TIMEOUT = "timeout"
CONNECT_ERROR = "connect_error"
SELLER_KEY_UNAVAILABLE = "seller_key_unavailable"
BAD_RESPONSE = "bad_response"  # a malformed or broken answer (no status)

# UpstreamError reasons without a status (upstream/base.py, proxy.py), by what they mean.
_REASONS = {
    "timed out waiting for the response": TIMEOUT,
    "no first token in time": TIMEOUT,
    "could not connect": CONNECT_ERROR,
    "seller key unavailable": SELLER_KEY_UNAVAILABLE,
}


def reason(failure: UpstreamError) -> str:
    """The record's code for a failed attempt: its status, else what kind of transport failure."""
    if failure.status is not None:
        return f"http_{failure.status}"
    if failure.reason.startswith("connection failed ("):
        return CONNECT_ERROR
    return _REASONS.get(failure.reason, BAD_RESPONSE)


@dataclass(slots=True)
class RouteTrace:
    """Filled by the pipeline: `requested`/`resolved`/`alias_source` once the model is resolved
    (trade.run), `passed` by failover (proxy.failover), in the order the listings came up."""

    requested: str | None = None  # None: never resolved (a Meter made outside the pipeline)
    resolved: str | None = None
    alias_source: str | None = None  # routing.resolve_model's `how`
    passed: list[tuple[int, str, str]] = field(default_factory=list)  # (listing, provider, reason)

    def resolved_from(self, requested: str, route: Route) -> None:
        self.requested = requested
        self.resolved = route.model["model_id"]
        self.alias_source = route.alias_source

    def passed_over(self, candidate: RouteCandidate, why: str) -> None:
        self.passed.append((candidate.listing_id, candidate.provider_slug, why))

    def as_route(self, served: RouteCandidate) -> dict | None:
        """Settlement.route: this trace with `served` as the last attempt."""
        if self.requested is None:
            return None
        attempts = [
            {"listing_id": listing_id, "provider": provider, "outcome": FAILED_OVER, "reason": why}
            for listing_id, provider, why in self.passed
        ]
        attempts.append(
            {
                "listing_id": served.listing_id,
                "provider": served.provider_slug,
                "outcome": SERVED,
                "reason": None,
            }
        )
        return {
            "model": self.requested,
            "model_resolved": self.resolved,
            "alias_source": self.alias_source,
            "attempts": attempts,
        }
