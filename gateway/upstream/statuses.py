"""How each upstream answer counts: the one table the gateway, market health and the probes read.

Every upstream HTTP status, and every transport error (status None: connect error, timeout, a
broken or malformed answer), is one Kind:

| kind | statuses | gateway fails over | health failure | a pending listing's verification |
| --- | --- | --- | --- | --- |
| key_rejected | 401, 402, 403 | yes | yes, and the listing is suspended | rejected (key reason) |
| buyer_fault | 400, 413, 422 | no: the buyer gets a 400 | no | rejected |
| listing_fault | 404, 409, 415, any other 4xx | yes | yes | rejected |
| transient | 408, 429, 5xx, transport errors, anything else | yes | yes | retried next beat |

Buyer's fault means the provider called the request itself invalid: every listing would refuse it,
so no other listing is tried and no listing's health pays for it. A verification probe's request is
our own well-formed ping, so there a 400 says the listing cannot serve, and it is rejected.

404 is the listing's fault: the gateway asks for the catalogue's model under the listing's upstream
name at a fixed path, so a "not found" means the listing cannot serve a model it is listed for,
which nothing in the buyer's request can cause (docs/billing-policy.md bills nothing either way).
409 and 415 likewise cannot come from a buyer's body (the gateway always sends JSON to a stateless
endpoint). These fail over and count against the listing, like a 5xx; unlike a 5xx, retrying the
same listing later will not change the answer, which is what a verification probe needs to know.
"""

from __future__ import annotations

from enum import StrEnum


class Kind(StrEnum):
    KEY_REJECTED = "key_rejected"  # the seller's key is bad: suspend the listing
    BUYER_FAULT = "buyer_fault"  # the request is bad: stop, a 400 to the buyer, no health cost
    LISTING_FAULT = "listing_fault"  # this listing cannot serve it, another may
    TRANSIENT = "transient"  # may pass on another listing, or on this one later


_BY_STATUS = {
    400: Kind.BUYER_FAULT,
    401: Kind.KEY_REJECTED,
    402: Kind.KEY_REJECTED,  # no balance on the key
    403: Kind.KEY_REJECTED,
    404: Kind.LISTING_FAULT,
    408: Kind.TRANSIENT,
    409: Kind.LISTING_FAULT,
    413: Kind.BUYER_FAULT,
    415: Kind.LISTING_FAULT,
    422: Kind.BUYER_FAULT,
    429: Kind.TRANSIENT,
}


def kind_of(status: int | None) -> Kind:
    """The kind of a failed attempt's status; None is a transport error or a malformed answer."""
    if status is None:
        return Kind.TRANSIENT
    kind = _BY_STATUS.get(status)
    if kind is not None:
        return kind
    return Kind.LISTING_FAULT if 400 <= status < 500 else Kind.TRANSIENT


def fails_over(status: int | None) -> bool:
    """Whether the gateway tries the next listing (UpstreamError.retryable)."""
    return kind_of(status) is not Kind.BUYER_FAULT


def counts_against_health(status: int | None) -> bool:
    """Whether a failed attempt with this status is a failure in the listing's health."""
    return kind_of(status) is not Kind.BUYER_FAULT


def key_rejected(status: int | None) -> bool:
    """Whether the upstream refused the seller's key (the listing is suspended)."""
    return kind_of(status) is Kind.KEY_REJECTED


def lasting(status: int | None) -> bool:
    """Whether asking the same listing again would get the same answer (verification rejects)."""
    return kind_of(status) is not Kind.TRANSIENT


def describe(status: int) -> str:
    """Our short description of a failed status, for health records and the seller's pages."""
    if status in (401, 403):
        return f"the upstream rejected the key (HTTP {status})"
    if status == 402:
        return "the upstream reports no balance (HTTP 402)"
    if status == 429:
        return "rate limited by the upstream (HTTP 429)"
    if status >= 500:
        return f"upstream server error (HTTP {status})"
    return f"the upstream refused the request (HTTP {status})"
