"""Billing reads: fee profiles, wallet summaries, statements, earnings, daily series for charts."""

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from accounts.models import AccessKey
from billing import generation
from billing.export_range import ExportRange
from billing.models import (
    AccountKind,
    LedgerAccount,
    LedgerEntry,
    Payout,
    PayoutStatus,
    SellerFeeOverride,
    SignupCreditRequest,
    SignupCreditStatus,
    StripeReversal,
    TopUp,
    TopUpStatus,
    UsageRecord,
)
from billing.signup_limits import signup_network

if TYPE_CHECKING:
    from billing.usage_filter import UsageFilter


def fee_profile_for_seller(*, seller_id: int) -> tuple[int, int]:
    """(fee_profile_id, fee_bps): the seller's override, else the default profile.

    The default profile is created by a data migration and billing.demo.seed; if an operator
    deleted it (or a test flushed it), it is recreated from DRAGONFLY_DEFAULT_FEE_BPS.
    """
    override = (
        SellerFeeOverride.objects.filter(seller_id=seller_id)
        .values_list("fee_profile_id", "fee_profile__fee_bps")
        .first()
    )
    if override is not None:
        return override
    from billing.services.fees import fee_profile_default_ensure

    profile = fee_profile_default_ensure()
    return profile.pk, profile.fee_bps


def _account(*, user, kind: str) -> LedgerAccount | None:
    return LedgerAccount.objects.filter(user=user, kind=kind).first()


def lifetime_spent_nusd(*, user) -> int:
    """What the wallet was debited for requests, less refunded ones (kept by the settlement)."""
    wallet = LedgerAccount.objects.filter(user=user, kind=AccountKind.WALLET).only("spent_nusd")
    return int(wallet.values_list("spent_nusd", flat=True).first() or 0)


def lifetime_topups_nusd(*, user) -> int:
    """Paid top-ups less what Stripe took back from them (refunds, disputes): money that stayed."""
    paid = (
        TopUp.objects.filter(user=user, status=TopUpStatus.PAID).aggregate(s=Sum("amount_nusd"))[
            "s"
        ]
        or 0
    )
    taken_back = StripeReversal.objects.filter(user=user).aggregate(s=Sum("debited_nusd"))["s"] or 0
    return paid - taken_back


def wallet_reversals(*, user, limit: int = 5) -> list[StripeReversal]:
    """The latest refunds and disputes that debited the buyer's wallet (the dashboard explains a
    negative balance with them)."""
    return list(StripeReversal.objects.filter(user=user, debited_nusd__gt=0)[:limit])


def wallet_summary(*, user) -> dict[str, int]:
    wallet = _account(user=user, kind=AccountKind.WALLET)
    balance = wallet.balance_nusd if wallet else 0
    held = wallet.held_nusd if wallet else 0
    month_start = timezone.now().replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    spent = (
        UsageRecord.objects.filter(buyer=user, created_at__gte=month_start).aggregate(
            s=Sum("buyer_debit_nusd")
        )["s"]
        or 0
    )
    return {
        "balance_nusd": balance,
        "held_nusd": held,
        "available_nusd": balance - held,
        "spent_this_month_nusd": spent,
        "lifetime_topups_nusd": lifetime_topups_nusd(user=user),
    }


def earnings_summary(*, seller) -> dict[str, int]:
    earnings = _account(user=seller, kind=AccountKind.EARNINGS)
    totals = UsageRecord.objects.filter(seller=seller).aggregate(
        earned=Sum("seller_credit_nusd"), requests=Count("id")
    )
    pending = (
        Payout.objects.filter(seller=seller, status__in=["requested", "approved"]).aggregate(
            s=Sum("amount_nusd")
        )["s"]
        or 0
    )
    paid = (
        Payout.objects.filter(seller=seller, status="paid").aggregate(s=Sum("amount_nusd"))["s"]
        or 0
    )
    return {
        "available_nusd": earnings.balance_nusd if earnings else 0,
        "lifetime_earned_nusd": totals["earned"] or 0,
        "requests": totals["requests"] or 0,
        "payouts_pending_nusd": pending,
        "paid_out_nusd": paid,
    }


def is_seller(*, user) -> bool:
    from market.models import Listing

    return (
        Listing.objects.filter(seller=user).exists()
        or LedgerAccount.objects.filter(user=user, kind=AccountKind.EARNINGS).exists()
    )


def ledger_history(*, user, kind: str = AccountKind.WALLET) -> QuerySet[LedgerEntry]:
    """The user's ledger lines for one of their accounts, newest first."""
    return (
        LedgerEntry.objects.filter(account__user=user, account__kind=kind)
        .select_related("transaction")
        .order_by("-id")
    )


def key_spent_nusd(*, access_key_id: int) -> int:
    """What one access key has cost its buyer so far: the sum of its settled buyer debits."""
    total = UsageRecord.objects.filter(access_key_id=access_key_id).aggregate(
        s=Sum("buyer_debit_nusd")
    )["s"]
    return int(total or 0)


def usage_list(*, buyer, filters: "UsageFilter | None" = None) -> QuerySet[UsageRecord]:
    """The buyer's settled requests, newest first, narrowed by `filters` (validated by
    billing.usage_filter: its key is one of the buyer's). Each row carries its key's name, prefix
    and revocation time (None when it had no key or the key row is gone) and its provider's slug,
    all in the one query that reads the rows: the usage record holds the key's id, not a
    foreign key, so each is a subquery on the key's primary key."""
    records = UsageRecord.objects.filter(buyer=buyer)
    if filters is not None:
        records = records.filter(**filters.lookups())
    key = AccessKey.objects.filter(pk=OuterRef("access_key_id"), user_id=OuterRef("buyer_id"))
    return records.annotate(
        key_name=Subquery(key.values("name")[:1]),
        key_prefix=Subquery(key.values("prefix")[:1]),
        key_revoked_at=Subquery(key.values("revoked_at")[:1]),
        provider_slug=F("listing__provider__slug"),
    ).order_by("-created_at", "-id")


def _generation(**scope) -> dict[str, Any] | None:
    """The full generation record of the usage record matching `scope` (one indexed read by
    request id); the provider names of listings passed over cost one more query, only on failover."""
    from market.models import Provider

    record = (
        UsageRecord.objects.select_related("listing__provider", "fee_profile")
        .filter(**scope)
        .first()
    )
    if record is None:
        return None
    names = {}
    if record.listing is not None:
        names[record.listing.provider.slug] = record.listing.provider.name
    others = generation.attempt_slugs(record) - names.keys()
    if others:
        names.update(Provider.objects.filter(slug__in=others).values_list("slug", "name"))
    return generation.generation_record(record, names)


def usage_generation(*, buyer, request_id: str) -> dict[str, Any] | None:
    """GET /v1/generation's record of the buyer's request, or None: unknown and another account's
    request are alike."""
    return _generation(buyer=buyer, request_id=request_id)


def sale_generation(*, seller, request_id: str) -> dict[str, Any] | None:
    """What the seller may see of a request one of its listings served (billing.generation), or
    None for any other request."""
    from market.models import Listing

    full = _generation(seller=seller, request_id=request_id)
    if full is None:
        return None
    own = {full["listing_id"]}  # the listing that served is the seller's: that is the scope
    others = {attempt["listing_id"] for attempt in full["attempts"]} - own
    if others:  # listings passed over: the seller's own only (one query, only on failover)
        own.update(
            Listing.objects.filter(seller=seller, pk__in=others).values_list("pk", flat=True)
        )
    return generation.seller_record(full, own)


def usage_refundable_ids(*, listing_id: int, model_id: str, since: datetime) -> list[str]:
    """Request ids a listing served with a model since `since` that cost something and were not
    refunded (what market/authenticity_refunds.py gives back), oldest first."""
    return list(
        UsageRecord.objects.filter(
            listing_id=listing_id,
            model_id=model_id,
            created_at__gte=since,
            refunded_at__isnull=True,
            cost_nusd__gt=0,
        )
        .order_by("created_at", "pk")
        .values_list("request_id", flat=True)
    )


def sales_list(*, seller) -> QuerySet[UsageRecord]:
    return UsageRecord.objects.filter(seller=seller).order_by("-created_at", "-id")


# Requests sent under a hard TTFT promise, and those whose listing broke it (as settled).
_SLA_PROMISED = Q(sla_max_ttft_ms__isnull=False)
_SLA_BREACHED = Q(sla_breached=True)


def earnings_by_listing(*, seller, date_range: ExportRange | None = None) -> list[dict[str, Any]]:
    """Sales per listing, all time or within `date_range` (UTC days)."""
    within = date_range.lookups("created_at") if date_range else {}
    rows = (
        UsageRecord.objects.filter(seller=seller, **within)
        .values("listing_id", "listing__name")
        .annotate(
            requests=Count("id"),
            # The buyer left after the upstream accepted, before the first token: the prompt
            # is billed (billing policy rule 4), since the seller's provider charged for it.
            prompt_only=Count("id", filter=Q(outcome="client_disconnected", output_units=0)),
            input_units=Sum("input_units"),
            output_units=Sum("output_units"),
            cost_nusd=Sum("cost_nusd"),
            fee_nusd=Sum("fee_nusd"),
            earned_nusd=Sum("seller_credit_nusd"),
            # SLA refunds: requests under a hard TTFT promise, those whose first token came late
            # (served, not paid), and what they would have earned the seller before the fee.
            sla_promised=Count("id", filter=_SLA_PROMISED),
            sla_breached=Count("id", filter=_SLA_BREACHED),
            sla_waived_nusd=Sum("sla_waived_nusd"),
        )
        .order_by("listing_id")
    )
    return [dict(row) for row in rows]


def payout_list(*, seller) -> QuerySet[Payout]:
    return Payout.objects.filter(seller=seller).order_by("-requested_at")


def _daily(qs: QuerySet, field: str, *, days: int, count: bool = False) -> list[tuple[date, int]]:
    today = timezone.localdate()
    start = today - timedelta(days=days - 1)
    sums = dict(
        qs.filter(created_at__date__gte=start)
        .annotate(day=TruncDate("created_at"))
        .values("day")
        .annotate(total=Count(field) if count else Sum(field))
        .values_list("day", "total")
    )
    return [
        (start + timedelta(days=i), int(sums.get(start + timedelta(days=i)) or 0))
        for i in range(days)
    ]


def daily_spend(*, buyer, days: int = 30) -> list[tuple[date, int]]:
    return _daily(UsageRecord.objects.filter(buyer=buyer), "buyer_debit_nusd", days=days)


def daily_requests(*, buyer, days: int = 30) -> list[tuple[date, int]]:
    return _daily(UsageRecord.objects.filter(buyer=buyer), "id", days=days, count=True)


def daily_earnings(*, seller, days: int = 30) -> list[tuple[date, int]]:
    return _daily(UsageRecord.objects.filter(seller=seller), "seller_credit_nusd", days=days)


def listing_sales_today(*, listing_ids: Iterable[int]) -> dict[int, int]:
    """What buyers paid each listing since midnight UTC (cost at its asks), for daily spend caps."""
    ids = list(listing_ids)
    if not ids:
        return {}
    midnight = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    rows = (
        UsageRecord.objects.filter(listing_id__in=ids, created_at__gte=midnight)
        .values("listing_id")
        .annotate(total=Sum("cost_nusd"))
    )
    return {row["listing_id"]: row["total"] for row in rows}


def sla_by_listing(*, listing_ids: Iterable[int], days: int = 7) -> dict[int, dict[str, int]]:
    """Each listing's requests under a hard TTFT promise in the last `days` days, and how many of
    those its first token broke (served, not paid): the seller's breach rate."""
    since = timezone.now() - timedelta(days=days)
    rows = (
        UsageRecord.objects.filter(
            _SLA_PROMISED, listing_id__in=list(listing_ids), created_at__gte=since
        )
        .values("listing_id")
        .annotate(promised=Count("id"), breached=Count("id", filter=_SLA_BREACHED))
    )
    return {
        row["listing_id"]: {"promised": row["promised"], "breached": row["breached"]}
        for row in rows
    }


def signup_credit_pending(*, user) -> bool:
    """The user's signup credit is held for an operator (a daily limit was full)."""
    return SignupCreditRequest.objects.filter(user=user, status=SignupCreditStatus.PENDING).exists()


def _payout_window_start(*, seller_id: Any, requested_at: Any) -> QuerySet[Payout]:
    """The seller's payout request before this one that was not rejected (its `requested_at`
    starts this one's window); values or OuterRefs."""
    return (
        Payout.objects.filter(seller_id=seller_id, requested_at__lt=requested_at)
        .exclude(status=PayoutStatus.REJECTED)
        .order_by("-requested_at")
    )


def _payout_sales(*, seller_id: Any, until: Any) -> QuerySet[UsageRecord]:
    """The seller's sales before `until` that were not refunded (the seller gave those back)."""
    return UsageRecord.objects.filter(
        seller_id=seller_id, refunded_at__isnull=True, created_at__lt=until
    )


def _bought_with_paid_money() -> Exists:
    """A sale whose buyer had completed a paid top-up by the time of the request."""
    return Exists(
        TopUp.objects.filter(
            user_id=OuterRef("buyer_id"),
            status=TopUpStatus.PAID,
            completed_at__lte=OuterRef("created_at"),
        )
    )


# Before any sale: the window of a seller's first payout request has no start.
_BEGINNING = datetime(1970, 1, 1, tzinfo=UTC)


def payouts_with_signup_credit_share(payouts: QuerySet[Payout]) -> QuerySet[Payout]:
    """`payouts` with what payout_signup_credit_exposure totals, `earned_nusd` and
    `free_credit_nusd`, computed in the same query (the admin's payout list, whatever its rows)."""
    sales = (
        _payout_sales(seller_id=OuterRef("seller_id"), until=OuterRef("requested_at"))
        .filter(created_at__gte=Coalesce(OuterRef("window_start"), Value(_BEGINNING)))
        .order_by()
        .values("seller_id")
    )
    return payouts.annotate(
        window_start=Subquery(
            _payout_window_start(
                seller_id=OuterRef("seller_id"), requested_at=OuterRef("requested_at")
            ).values("requested_at")[:1]
        )
    ).annotate(
        earned_nusd=Coalesce(
            Subquery(sales.annotate(total=Sum("seller_credit_nusd")).values("total")), 0
        ),
        free_credit_nusd=Coalesce(
            Subquery(
                sales.filter(~_bought_with_paid_money())
                .annotate(total=Sum("seller_credit_nusd"))
                .values("total")
            ),
            0,
        ),
    )


def payout_signup_credit_exposure(*, payout: Payout, top: int = 5) -> dict[str, Any]:
    """How much of the earnings behind `payout` came from buyers who had never paid.

    The window runs from the seller's previous payout request that was not rejected (else from
    their first sale) to this one's request. A sale is free-credit-funded when its buyer had no paid
    top-up completed by the time of the request: their wallet could hold only signup or operator
    credit. Refunded sales are left out (the seller gave them back). docs/signup-credit.md.
    """
    from accounts.models import User

    previous = (
        _payout_window_start(seller_id=payout.seller_id, requested_at=payout.requested_at)
        .values_list("requested_at", flat=True)
        .first()
    )
    sales = _payout_sales(seller_id=payout.seller_id, until=payout.requested_at)
    if previous is not None:
        sales = sales.filter(created_at__gte=previous)
    had_paid = _bought_with_paid_money()
    totals = sales.aggregate(
        earned=Sum("seller_credit_nusd"), free=Sum("seller_credit_nusd", filter=~had_paid)
    )
    rows = list(
        sales.filter(~had_paid)
        .values("buyer_id", "buyer__email", "buyer__signup_ip")
        .annotate(earned_nusd=Sum("seller_credit_nusd"), requests=Count("id"))
        .order_by("-earned_nusd", "buyer_id")[:top]
    )
    ever_paid = set(
        TopUp.objects.filter(
            user_id__in=[row["buyer_id"] for row in rows], status=TopUpStatus.PAID
        ).values_list("user_id", flat=True)
    )
    seller_network = ""
    if rows:
        seller_network = signup_network(
            User.objects.filter(pk=payout.seller_id).values_list("signup_ip", flat=True).first()
        )
    buyers = []
    for row in rows:
        network = signup_network(row["buyer__signup_ip"])
        buyers.append(
            {
                "buyer_id": row["buyer_id"],
                "email": row["buyer__email"],
                "earned_nusd": int(row["earned_nusd"]),
                "requests": row["requests"],
                "ever_topped_up": row["buyer_id"] in ever_paid,
                "signup_network": network,
                "sellers_network": bool(network) and network == seller_network,
            }
        )
    return {
        "since": previous,
        "until": payout.requested_at,
        "earned_nusd": int(totals["earned"] or 0),
        "free_credit_nusd": int(totals["free"] or 0),
        "top_buyers": buyers,
    }
