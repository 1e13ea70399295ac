"""The live pages' reads, each scoped to the one user whose socket asks (docs/accounts.md,
"Live pages": what each costs). Each is one indexed query; none is made on /v1's request path."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Avg, Count, Q, Sum
from django.utils import timezone

from billing import selectors as billing_selectors
from billing.models import AccountKind, LedgerAccount, Outcome, TopUp, UsageRecord
from market.models import HealthSample, Listing, ListingStatus


@dataclass(frozen=True)
class Wallet:
    balance_nusd: int
    held_nusd: int
    spent_nusd: int  # lifetime, less refunds: settlement keeps it on the wallet row


def wallet_now(*, user_id: int) -> Wallet:
    """The wallet's cached balances: one row by the (user, kind) unique index."""
    row = (
        LedgerAccount.objects.filter(user_id=user_id, kind=AccountKind.WALLET)
        .values_list("balance_nusd", "held_nusd", "spent_nusd")
        .first()
    )
    return Wallet(*row) if row else Wallet(0, 0, 0)


def usage_recent(*, user_id: int, since: datetime, limit: int) -> list[tuple[int, datetime]]:
    """(id, created_at) of the buyer's newest settled requests created at or after `since` (at most
    `limit`, newest first): from the `usage_buyer_recent` index alone, so re-reading the ones
    already sent costs next to nothing."""
    return list(
        UsageRecord.objects.filter(buyer_id=user_id, created_at__gte=since)
        .order_by("-created_at", "-id")
        .values_list("id", "created_at")[:limit]
    )


def usage_rows(*, user, ids: list[int]) -> list[UsageRecord]:
    """The buyer's requests `ids`, oldest first, in the Usage page's row shape
    (billing.selectors.usage_list: key and provider)."""
    if not ids:
        return []
    return list(billing_selectors.usage_list(buyer=user).filter(pk__in=ids).reverse())


@dataclass(frozen=True)
class ListingState:
    status: str
    status_label: str
    reason: str


def listing_state(*, seller_id: int, listing_id: int) -> ListingState | None:
    """The seller's own listing's status, or None (another seller's listing reads as none)."""
    row = (
        Listing.objects.filter(pk=listing_id, seller_id=seller_id)
        .exclude(status=ListingStatus.DELETED)
        .values_list("status", "status_reason")
        .first()
    )
    if row is None:
        return None
    status, reason = row
    return ListingState(status, ListingStatus(status).label, reason)


def listing_last_minute(*, seller_id: int, listing_id: int) -> dict[str, int | None]:
    """The listing's settled requests in the last 60 seconds (through the (seller, created_at)
    index: the rows of one minute), and its failed health checks in that minute."""
    start = timezone.now() - timedelta(seconds=60)
    totals = UsageRecord.objects.filter(
        seller_id=seller_id, listing_id=listing_id, created_at__gte=start
    ).aggregate(
        requests=Count("id"),
        failed=Count("id", filter=Q(outcome=Outcome.UPSTREAM_FAILED)),
        ttft=Avg("ttft_ms"),
        earned=Sum("seller_credit_nusd"),
    )
    checks = HealthSample.objects.filter(listing_id=listing_id, at__gte=start, ok=False).count()
    return {
        "requests": totals["requests"],
        "failed": totals["failed"],
        "failed_checks": checks,
        "ttft_ms": None if totals["ttft"] is None else round(totals["ttft"]),
        "earned_nusd": totals["earned"] or 0,
    }


def earnings_available_nusd(*, seller_id: int) -> int:
    """The seller's earnings account balance (all listings): one row."""
    value = (
        LedgerAccount.objects.filter(user_id=seller_id, kind=AccountKind.EARNINGS)
        .values_list("balance_nusd", flat=True)
        .first()
    )
    return int(value or 0)


def topup_state(*, user_id: int, session_id: str) -> tuple[str, int] | None:
    """(status, credited amount) of the user's own top-up of that Checkout Session, or None."""
    return (
        TopUp.objects.filter(user_id=user_id, stripe_session_id=session_id)
        .values_list("status", "amount_nusd")
        .first()
    )
