"""Reads of buyer disputes, each scoped to the one who may see it: the buyer (everything of their
own), the seller (no buyer: disputes against their listings), the operators' queue (the admin)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from billing.models import Dispute, DisputeReason


def dispute_list(*, buyer) -> QuerySet[Dispute]:
    """The buyer's disputes, newest first, with the request each is about."""
    return (
        Dispute.objects.filter(buyer=buyer).select_related("usage").order_by("-created_at", "-id")
    )


def dispute_for_request(*, buyer, request_id: str) -> Dispute | None:
    return Dispute.objects.filter(buyer=buyer, usage__request_id=request_id).first()


_SELLER_FIELDS = (
    "id", "usage__request_id", "usage__listing_id", "usage__seller_credit_nusd",
    "reason", "status", "created_at", "decided_at",
)  # fmt: skip


def _seller_rows(rows) -> list[dict[str, Any]]:
    return [{**row, "reason_label": DisputeReason(row["reason"]).label} for row in rows]


def disputes_against(*, seller, limit: int = 50) -> list[dict[str, Any]]:
    """The latest disputes of requests the seller's listings served. Only what a seller may see
    is read: never the buyer, never the buyer's own words or the operator's note to them."""
    rows = Dispute.objects.filter(seller=seller).order_by("-created_at", "-id")
    return _seller_rows(rows.values(*_SELLER_FIELDS)[:limit])


def dispute_against_sale(*, seller, request_id: str) -> dict[str, Any] | None:
    rows = Dispute.objects.filter(seller=seller, usage__request_id=request_id)
    found = _seller_rows(rows.values(*_SELLER_FIELDS)[:1])
    return found[0] if found else None
