"""What a substituting listing served is given back. When the authenticity probes suspend a
listing (market/authenticity_record.py), every request it served with the model that failed,
since that model last passed a check on it (since the listing was created, if it never did), is
refunded in full (sellers' Trading Terms v3, clause 8): the buyer gets back what they paid, the
seller's earnings lose what they earned (a clawback, even below zero), the fee and any overrun
are reversed. It is billing's one refund (billing.services.request_refund_unproven), made by no
operator, by the process that suspended the listing as soon as the suspension commits (with a
Celery task to finish it should the database fail midway).

Each refund is its own transaction and happens once per request (its idempotency key): a task
that runs again refunds only what is left, and a request refunded already (an approved dispute,
an SLA refund that cost nothing) is skipped.
"""

from __future__ import annotations

import logging
from datetime import datetime

from billing import selectors as billing_selectors
from billing.errors import AlreadyDone, InvalidState
from billing.services import request_refund_unproven
from market.models import AuthenticityCheck, CatalogModel, Listing, Verdict

logger = logging.getLogger(__name__)


def unproven_since(*, listing_id: int, model_pk: int) -> datetime:
    """When the model last passed a check on the listing, else when the listing was created."""
    passed = (
        AuthenticityCheck.objects.filter(
            listing_id=listing_id, model_id=model_pk, verdict=Verdict.PASSED
        )
        .order_by("-at")
        .values_list("at", flat=True)
        .first()
    )
    return passed or Listing.objects.values_list("created_at", flat=True).get(pk=listing_id)


def refund_unproven(*, listing_id: int, model_pk: int, since: datetime) -> int:
    """Refund the listing's requests for the model settled since `since`; how many were."""
    model_id = CatalogModel.objects.values_list("model_id", flat=True).get(pk=model_pk)
    reason = (
        f"Listing #{listing_id} was suspended: its authenticity probes of {model_id} failed, so "
        f"what it served with that model since {since:%Y-%m-%d %H:%M} UTC is refunded."
    )
    refunded = 0
    for request_id in billing_selectors.usage_refundable_ids(
        listing_id=listing_id, model_id=model_id, since=since
    ):
        try:
            request_refund_unproven(request_id=request_id, reason=reason)
        except (AlreadyDone, InvalidState):
            continue  # refunded meanwhile (a dispute), or nothing to give back
        refunded += 1
    logger.info("listing #%s: %d requests of %s refunded", listing_id, refunded, model_id)
    return refunded
