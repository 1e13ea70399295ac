"""The ledger's invariants, checked over the whole database (`manage.py ledger_check`).

Every read of one check comes from one snapshot of the database, so the check is safe to run while
money moves: on PostgreSQL a REPEATABLE READ, READ ONLY transaction; on SQLite (the embedded
default) one deferred transaction, which in WAL mode reads one snapshot and never blocks writers.
"""

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models import Case, F, OuterRef, Q, Subquery, Sum, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from billing.models import (
    USER_ACCOUNT_KINDS,
    AccountKind,
    Hold,
    HoldStatus,
    LedgerAccount,
    LedgerEntry,
    LedgerTransaction,
    StripeReversal,
    UsageRecord,
)
from observability import metrics

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


@contextmanager
def ledger_snapshot(*, using: str = DEFAULT_DB_ALIAS) -> Iterator[None]:
    """Run the block's reads in one snapshot of the database.

    Called inside a transaction already open on this connection, the block joins it (a savepoint)
    and reads what that transaction sees: the isolation level can only be chosen by a transaction's
    first statement. The tests rely on this to check a ledger they broke and will roll back.
    """
    connection = connections[using]
    if connection.in_atomic_block:
        with transaction.atomic(using=using):
            yield
        return
    if connection.vendor == "sqlite":
        # The project opens SQLite transactions IMMEDIATE (they take the write lock at BEGIN);
        # a checker that only reads needs no lock, and a deferred transaction in WAL mode takes
        # its snapshot at its first read without making the gateway's settlements wait.
        connection.ensure_connection()  # connecting sets transaction_mode from OPTIONS
        mode = getattr(connection, "transaction_mode", None)
        setattr(connection, "transaction_mode", "DEFERRED")  # noqa: B010 - not in the stubs
        try:
            with transaction.atomic(using=using):
                yield
        finally:
            setattr(connection, "transaction_mode", mode)  # noqa: B010
        return
    with transaction.atomic(using=using):
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield


def ledger_violations(
    *, progress: Progress = _quiet, chunk: int = 5000, using: str = DEFAULT_DB_ALIAS
) -> list[str]:
    """Every broken invariant, one line each; an empty list means the ledger is sound.

    All reads come from one snapshot (`ledger_snapshot`): read statement by statement, a check
    under traffic saw an account's cached balance before a settlement and its entries after it,
    and reported violations that did not exist.
    """
    with ledger_snapshot(using=using):
        return _violations(progress=progress, chunk=chunk, using=using)


def _violations(*, progress: Progress, chunk: int, using: str) -> list[str]:
    problems: list[str] = []
    entries = LedgerEntry.objects.using(using)
    holds = Hold.objects.using(using)

    # 1. Each transaction's entries sum to zero, and no transaction is empty.
    unbalanced = (
        entries.values("transaction_id")
        .annotate(total=Sum("amount_nusd"))
        .exclude(total=0)
        .order_by("transaction_id")
    )
    for row in unbalanced[:100]:
        problems.append(f"transaction #{row['transaction_id']} sums to {row['total']}, not 0")
    transactions = LedgerTransaction.objects.using(using)
    for txn_id in transactions.filter(entries__isnull=True).values_list("id", flat=True)[:100]:
        problems.append(f"transaction #{txn_id} has no entries")
    progress(f"checked {transactions.count()} transactions for balance")

    # 2. Cached balances of user accounts equal the sum of their entries; held equals active holds;
    #    no wallet's available balance is negative, except a wallet Stripe's refunds and disputes
    #    took below zero: nothing held, and no deeper than they debited it. One statement per
    #    chunk of accounts (each
    #    account with its entries' sum and its active holds' sum), chunked so big ledgers show
    #    progress; the snapshot keeps the chunks consistent with each other.
    entry_sum = (
        entries.filter(account_id=OuterRef("pk"))
        .order_by()
        .values("account_id")
        .annotate(s=Sum("amount_nusd"))
        .values("s")
    )
    active_held = (
        holds.filter(account_id=OuterRef("pk"), status=HoldStatus.ACTIVE)
        .order_by()
        .values("account_id")
        .annotate(s=Sum("amount_nusd"))
        .values("s")
    )
    reversed_sum = (
        StripeReversal.objects.using(using)
        .filter(user_id=OuterRef("user_id"))
        .order_by()
        .values("user_id")
        .annotate(s=Sum("debited_nusd"))
        .values("s")
    )
    spent_sum = (  # a wallet's debits for requests not refunded (the cached spent_nusd)
        UsageRecord.objects.using(using)
        .filter(buyer_id=OuterRef("user_id"), refunded_at__isnull=True)
        .order_by()
        .values("buyer_id")
        .annotate(s=Sum("buyer_debit_nusd"))
        .values("s")
    )
    accounts = (
        LedgerAccount.objects.using(using)
        .filter(kind__in=USER_ACCOUNT_KINDS)
        .annotate(
            entries_nusd=Coalesce(Subquery(entry_sum), Value(0)),
            active_held_nusd=Coalesce(Subquery(active_held), Value(0)),
            reversed_nusd=Coalesce(Subquery(reversed_sum), Value(0)),
            debited_nusd=Case(
                When(kind=AccountKind.WALLET, then=Coalesce(Subquery(spent_sum), Value(0))),
                default=Value(0),
            ),
        )
        .order_by("id")
    )
    last_id, seen = 0, 0
    while True:
        rows = list(
            accounts.filter(id__gt=last_id).values_list(
                "id", "kind", "user_id", "balance_nusd", "held_nusd", "entries_nusd",
                "active_held_nusd", "reversed_nusd", "spent_nusd", "debited_nusd",
            )[:chunk]
        )  # fmt: skip
        if not rows:
            break
        for pk, kind, user_id, balance, held, total, active, reversed_nusd, spent, debited in rows:
            if balance != total:
                problems.append(
                    f"account #{pk} ({kind} of user {user_id}) caches {balance} but its entries "
                    f"sum to {total}"
                )
            if held != active:
                problems.append(f"account #{pk} holds {held} but its active holds sum to {active}")
            if kind == AccountKind.WALLET and spent != debited:
                problems.append(
                    f"wallet #{pk} of user {user_id} caches lifetime spend {spent} but its "
                    f"unrefunded requests were debited {debited}"
                )
            if kind == AccountKind.WALLET and total - held < 0 and (held or -total > reversed_nusd):
                problems.append(
                    f"wallet #{pk} of user {user_id} has negative available balance {total - held}"
                )
        last_id = rows[-1][0]
        seen += len(rows)
        progress(f"checked {seen} user accounts")

    # 3. No active hold outlived its limit (the reaper voids them).
    cutoff = timezone.now() - timedelta(seconds=settings.DRAGONFLY_HOLD_TTL_SECONDS)
    for hold in holds.filter(status=HoldStatus.ACTIVE, created_at__lt=cutoff)[:100]:
        problems.append(
            f"hold {hold.request_id} is active since {hold.created_at:%Y-%m-%d %H:%M:%S}"
        )

    # 4. Per request: cost = buyer debit + overrun = seller credit + fee, and its ledger transaction
    #    moves exactly those amounts.
    records_all = UsageRecord.objects.using(using)
    for record in records_all.exclude(
        Q(cost_nusd=F("seller_credit_nusd") + F("fee_nusd"))
        & Q(cost_nusd=F("buyer_debit_nusd") + F("overrun_nusd"))
    )[:100]:
        problems.append(
            f"request {record.request_id}: buyer debit + overrun != seller credit + fee"
        )
    last_id, seen = 0, 0
    while True:
        records = list(records_all.filter(id__gt=last_id).order_by("id")[:chunk])
        if not records:
            break
        txn_ids = [r.transaction_id for r in records if r.transaction_id]
        lines: dict[int, dict[tuple[str, int | None], int]] = {}
        for txn_id, kind, user_id, amount in entries.filter(transaction_id__in=txn_ids).values_list(
            "transaction_id", "account__kind", "account__user_id", "amount_nusd"
        ):
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


def ledger_check_run(*, progress: Progress = _quiet, chunk: int = 5000) -> list[str]:
    """Check the ledger (`ledger_violations`) and record the outcome for /metrics.

    The outcome goes to Redis (`observability.metrics.ledger_check_record`), so every process's
    /metrics reports the last check, wherever it ran (the command, a worker's beat task). A Redis
    failure is logged and does not change the check's answer.
    """
    started = time.monotonic()
    problems = ledger_violations(progress=progress, chunk=chunk)
    try:
        metrics.ledger_check_record(
            violations=len(problems),
            finished_at=time.time(),
            duration_seconds=time.monotonic() - started,
        )
    except Exception:  # the check's answer stands; monitoring sees the stale timestamp
        logger.exception("ledger_check: could not record the result for /metrics")
    return problems
