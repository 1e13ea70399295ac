"""What each live page is sent: a feed per open socket reads its own user's rows (live/selectors.py)
and remembers what it sent, so each read sends only what changed (docs/accounts.md, "Live pages").

Money leaves here already formatted (billing.money.format_usd), the one way the site shows it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.urls import reverse
from django.utils import timezone

from billing import selectors as billing_selectors
from billing.models import Outcome, UsageRecord
from billing.money import format_usd
from live import selectors

Message = dict[str, Any]

# A usage record's created_at is the database clock inside its settlement batch's transaction,
# which commits a moment later: a row may become visible after a newer one was read. Every read
# looks back this far behind the newest row seen and skips the rows already sent.
COMMIT_LAG = timedelta(seconds=10)
# Rows a read sends at most (newest first); a page shows requests, it is not an export.
ROWS_PER_READ = 50
# How far back a reconnecting page may ask for what it missed.
CATCH_UP = timedelta(minutes=10)


class Feed:
    def read(self) -> list[Message]:
        """The messages to send now: everything on the first read, then what changed."""
        raise NotImplementedError


class NewRows:
    """Which of the rows read are new to this socket, and where the next read starts."""

    def __init__(self, since: datetime) -> None:
        self.since = since
        self.sent: dict[int, datetime] = {}

    def take(self, rows: list[tuple[int, datetime]]) -> list[int]:
        """The ids of the (id, created_at) rows (newest first, as read) not sent before."""
        fresh = [pk for pk, _ in rows if pk not in self.sent]
        self.sent.update(rows)
        if rows:
            self.since = max(self.since, rows[0][1] - COMMIT_LAG)
        self.sent = {pk: at for pk, at in self.sent.items() if at >= self.since}
        return fresh


def request_row(record: UsageRecord) -> Message:
    """One settled request as the Overview and Usage tables show it."""
    key = (
        f"{record.key_name} {record.key_prefix}…"  # type: ignore[attr-defined]
        if getattr(record, "key_name", None) is not None
        else (f"deleted key #{record.access_key_id}" if record.access_key_id else "none")
    )
    return {
        "request_id": record.request_id,
        "url": reverse("billing:usage_detail", args=[record.request_id]),
        "created": record.created_at.isoformat(),
        "when": timezone.localtime(record.created_at).strftime("%Y-%m-%d %H:%M:%S"),
        "key": key,
        "model": record.model_id,
        "provider": getattr(record, "provider_slug", None) or "",
        "outcome": record.outcome,
        "outcome_label": Outcome(record.outcome).label,
        "completed": record.outcome == Outcome.COMPLETED,
        "input": record.input_units,
        "output": record.output_units,
        "cost": format_usd(record.buyer_debit_nusd),
        "ttft_ms": record.ttft_ms,
        "latency_ms": record.duration_ms,
    }


class WalletFeed(Feed):
    """Balance, held, available and this month's spend, from the wallet row alone: this month's
    spend is summed once (billing.selectors.wallet_summary), then moved by the wallet's lifetime
    spend, which settlement keeps on the same row."""

    def __init__(self, user) -> None:
        self.user = user
        self.last: Message | None = None
        self._month_start()

    def _month_start(self) -> None:
        now = timezone.now()
        self.month = (now.year, now.month)
        self.month_spent = billing_selectors.wallet_summary(user=self.user)["spent_this_month_nusd"]
        self.spent_then = selectors.wallet_now(user_id=self.user.pk).spent_nusd

    def read(self) -> list[Message]:
        now = timezone.now()
        if (now.year, now.month) != self.month:
            self._month_start()
        wallet = selectors.wallet_now(user_id=self.user.pk)
        message = {
            "type": "wallet",
            "fields": {
                "balance": format_usd(wallet.balance_nusd),
                "held": format_usd(wallet.held_nusd),
                "available": format_usd(wallet.balance_nusd - wallet.held_nusd),
                "spent_month": format_usd(self.month_spent + wallet.spent_nusd - self.spent_then),
            },
        }
        if message == self.last:
            return []
        self.last = message
        return [message]


class AccountFeed(Feed):
    """The buyer's Overview and Usage pages: the wallet, and each request as it settles."""

    def __init__(self, user, *, after: datetime | None = None) -> None:
        self.user = user
        self.wallet = WalletFeed(user)
        now = timezone.now()
        since = now - COMMIT_LAG
        if after is not None and now - CATCH_UP <= after < since:
            since = after
        self.rows = NewRows(since)

    def read(self) -> list[Message]:
        recent = selectors.usage_recent(
            user_id=self.user.pk, since=self.rows.since, limit=ROWS_PER_READ
        )
        fresh = selectors.usage_rows(user=self.user, ids=self.rows.take(recent))
        messages = [{"type": "requests", "rows": [request_row(r) for r in fresh]}] if fresh else []
        return messages + self.wallet.read()


class ListingFeed(Feed):
    """A seller's listing page: its status, its last minute of traffic, the seller's earnings."""

    def __init__(self, seller_id: int, listing_id: int) -> None:
        self.seller_id = seller_id
        self.listing_id = listing_id
        self.last: Message | None = None

    def exists(self) -> bool:
        return (
            selectors.listing_state(seller_id=self.seller_id, listing_id=self.listing_id)
            is not None
        )

    def read(self) -> list[Message]:
        state = selectors.listing_state(seller_id=self.seller_id, listing_id=self.listing_id)
        if state is None:
            return [{"type": "gone"}]
        minute = selectors.listing_last_minute(seller_id=self.seller_id, listing_id=self.listing_id)
        ttft = minute["ttft_ms"]
        message = {
            "type": "listing",
            "status": state.status,
            "fields": {
                "status": state.status_label,
                "reason": state.reason,
                "requests": str(minute["requests"]),
                "failed": str(minute["failed"]),
                "failed_checks": str(minute["failed_checks"]),
                "ttft": "—" if ttft is None else f"{ttft} ms",
                "earned_minute": format_usd(minute["earned_nusd"] or 0),
                "earnings_available": format_usd(
                    selectors.earnings_available_nusd(seller_id=self.seller_id)
                ),
            },
        }
        if message == self.last:
            return []
        self.last = message
        return [message]


class TopUpFeed(Feed):
    """The top-up success page: the wallet, and the top-up's credit once Stripe's webhook lands."""

    def __init__(self, user, *, session_id: str) -> None:
        self.user = user
        self.session_id = session_id
        self.wallet = WalletFeed(user)
        self.last: Message | None = None

    def read(self) -> list[Message]:
        messages: list[Message] = []
        state = (
            selectors.topup_state(user_id=self.user.pk, session_id=self.session_id)
            if self.session_id
            else None
        )
        if state is not None:
            status, amount_nusd = state
            message = {
                "type": "topup",
                "status": status,
                "fields": {"amount": format_usd(amount_nusd) if amount_nusd else ""},
            }
            if message != self.last:
                self.last = message
                messages.append(message)
        return messages + self.wallet.read()
