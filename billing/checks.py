"""The ledger's invariants, checked over the whole database (`manage.py ledger_check`)."""

from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db.models import F, Q, Sum
from django.utils import timezone

from billing.models import (
    USER_ACCOUNT_KINDS,
    AccountKind,
    Hold,
    HoldStatus,
    LedgerAccount,
    LedgerEntry,
    LedgerTransaction,
    UsageRecord,
)

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


def ledger_violations(*, progress: Progress = _quiet, chunk: int = 5000) -> list[str]:
    """Every broken invariant, one line each; an empty list means the ledger is sound."""
    problems: list[str] = []

    # 1. Each transaction's entries sum to zero, and no transaction is empty.
    unbalanced = (
        LedgerEntry.objects.values("transaction_id")
        .annotate(total=Sum("amount_nusd"))
        .exclude(total=0)
        .order_by("transaction_id")
    )
    for row in unbalanced[:100]:
        problems.append(f"transaction #{row['transaction_id']} sums to {row['total']}, not 0")
    for txn_id in LedgerTransaction.objects.filter(entries__isnull=True).values_list(
        "id", flat=True
    )[:100]:
        problems.append(f"transaction #{txn_id} has no entries")
    progress(f"checked {LedgerTransaction.objects.count()} transactions for balance")

    # 2. Cached balances of user accounts equal the sum of their entries; held equals active holds;
    #    no wallet's available balance is negative. Walked in chunks so big ledgers show progress.
    last_id, seen = 0, 0
    while True:
        accounts = list(
            LedgerAccount.objects.filter(id__gt=last_id, kind__in=USER_ACCOUNT_KINDS).order_by(
                "id"
            )[:chunk]
        )
        if not accounts:
            break
        ids = [a.pk for a in accounts]
        sums = dict(
            LedgerEntry.objects.filter(account_id__in=ids)
            .values("account_id")
            .annotate(s=Sum("amount_nusd"))
            .values_list("account_id", "s")
        )
        held = dict(
            Hold.objects.filter(account_id__in=ids, status=HoldStatus.ACTIVE)
            .values("account_id")
            .annotate(s=Sum("amount_nusd"))
            .values_list("account_id", "s")
        )
        for account in accounts:
            total = sums.get(account.pk) or 0
            if account.balance_nusd != total:
                problems.append(
                    f"account #{account.pk} ({account.kind} of user {account.user_id}) caches "
                    f"{account.balance_nusd} but its entries sum to {total}"
                )
            if account.held_nusd != (held.get(account.pk) or 0):
                problems.append(
                    f"account #{account.pk} holds {account.held_nusd} but its active holds sum to "
                    f"{held.get(account.pk) or 0}"
                )
            if account.kind == AccountKind.WALLET and total - account.held_nusd < 0:
                problems.append(
                    f"wallet #{account.pk} of user {account.user_id} has negative available "
                    f"balance {total - account.held_nusd}"
                )
        last_id = ids[-1]
        seen += len(accounts)
        progress(f"checked {seen} user accounts")

    # 3. No active hold outlived its limit (the reaper voids them).
    cutoff = timezone.now() - timedelta(seconds=settings.DRAGONFLY_HOLD_TTL_SECONDS)
    for hold in Hold.objects.filter(status=HoldStatus.ACTIVE, created_at__lt=cutoff)[:100]:
        problems.append(
            f"hold {hold.request_id} is active since {hold.created_at:%Y-%m-%d %H:%M:%S}"
        )

    # 4. Per request: cost = buyer debit + overrun = seller credit + fee, and its ledger transaction
    #    moves exactly those amounts.
    for record in UsageRecord.objects.exclude(
        Q(cost_nusd=F("seller_credit_nusd") + F("fee_nusd"))
        & Q(cost_nusd=F("buyer_debit_nusd") + F("overrun_nusd"))
    )[:100]:
        problems.append(
            f"request {record.request_id}: buyer debit + overrun != seller credit + fee"
        )
    last_id, seen = 0, 0
    while True:
        records = list(
            UsageRecord.objects.filter(id__gt=last_id)
            .order_by("id")
            .select_related("transaction")[:chunk]
        )
        if not records:
            break
        txn_ids = [r.transaction_id for r in records if r.transaction_id]
        lines: dict[int, dict[tuple[str, int | None], int]] = {}
        for txn_id, kind, user_id, amount in LedgerEntry.objects.filter(
            transaction_id__in=txn_ids
        ).values_list("transaction_id", "account__kind", "account__user_id", "amount_nusd"):
            key = (kind, user_id)
            lines.setdefault(txn_id, {})[key] = lines.setdefault(txn_id, {}).get(key, 0) + amount
        for r in records:
            if r.transaction_id is None:
                if r.cost_nusd != 0:
                    problems.append(
                        f"request {r.request_id} cost {r.cost_nusd} but has no transaction"
                    )
                continue
            expected = {
                (AccountKind.WALLET.value, r.buyer_id): -r.buyer_debit_nusd,
                (AccountKind.OVERRUN.value, None): -r.overrun_nusd,
                (AccountKind.EARNINGS.value, r.seller_id): r.seller_credit_nusd,
                (AccountKind.FEE_REVENUE.value, None): r.fee_nusd,
            }
            expected = {k: v for k, v in expected.items() if v}
            if lines.get(r.transaction_id, {}) != expected:
                problems.append(
                    f"request {r.request_id}: its ledger transaction does not match its usage record"
                )
        last_id = records[-1].pk
        seen += len(records)
        progress(f"checked {seen} usage records")
    return problems
