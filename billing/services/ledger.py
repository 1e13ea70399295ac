"""The one way money moves: post a balanced transaction and keep the cached user balances in step.

Only user accounts (wallets, seller earnings) cache their balance: platform accounts (fee revenue,
overrun, promotions, …) are written by nearly every request, so caching theirs would make one hot
row that serialises all settlements. Their balance is the sum of their entries, read on demand.
"""

from collections.abc import Iterable

from django.db import IntegrityError, transaction
from django.db.models import F, Q

from billing.errors import AlreadyDone, BillingError, InsufficientBalance
from billing.models import (
    USER_ACCOUNT_KINDS,
    AccountKind,
    LedgerAccount,
    LedgerEntry,
    LedgerTransaction,
)


def account_platform(*, kind: str) -> LedgerAccount:
    """The platform's account of this kind (created on first use)."""
    if kind in USER_ACCOUNT_KINDS:
        raise BillingError(f"{kind} accounts belong to a user")
    account, _ = LedgerAccount.objects.get_or_create(kind=kind, user=None)
    return account


def account_for_user(*, user_id: int, kind: str) -> LedgerAccount:
    """The user's wallet or earnings account (created on first use, race-safe)."""
    if kind not in USER_ACCOUNT_KINDS:
        raise BillingError(f"{kind} is a platform account")
    account, _ = LedgerAccount.objects.get_or_create(kind=kind, user_id=user_id)
    return account


def ledger_post(
    *,
    kind: str,
    idempotency_key: str,
    lines: Iterable[tuple[LedgerAccount, int]],
    memo: str = "",
    request_id: str = "",
    created_by_id: int | None = None,
    held_deltas: dict[int, int] | None = None,
    funded_account_ids: Iterable[int] = (),
    overdrawn_wallet_ids: Iterable[int] = (),
) -> LedgerTransaction:
    """Write one balanced transaction and apply it to the cached balances, atomically.

    - Lines on the same account are merged; zero lines dropped; the rest must sum to zero.
    - Cached balances (user accounts) change by conditional UPDATEs in account-id order (a fixed
      lock order, so concurrent postings cannot deadlock): a wallet's available balance
      (balance - held) may never go below zero, nor may the balance of any account listed in
      `funded_account_ids` (e.g. earnings a payout draws on). Otherwise InsufficientBalance.
    - `held_deltas` moves a wallet's held amount in the same UPDATE (a settlement releases its hold).
    - `overdrawn_wallet_ids`: wallets this posting may take below zero, provided nothing is held
      on them (a Stripe refund or dispute of a top-up, billing/services/reversals.py; the
      database allows a wallet below its held amount only while nothing is held).
    - `idempotency_key` is unique: posting the same key twice raises AlreadyDone.
    """
    merged: dict[int, int] = {}
    accounts: dict[int, LedgerAccount] = {}
    for account, amount in lines:
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise BillingError("Ledger amounts are integers of nano-USD.")
        merged[account.pk] = merged.get(account.pk, 0) + amount
        accounts[account.pk] = account
    merged = {pk: amount for pk, amount in merged.items() if amount != 0}
    if not merged:
        raise BillingError("A transaction needs at least one non-zero line.")
    if sum(merged.values()) != 0:
        raise BillingError("A transaction's entries must sum to zero.")
    held_deltas = {pk: d for pk, d in (held_deltas or {}).items() if d}
    funded = set(funded_account_ids)
    overdrawn = set(overdrawn_wallet_ids)

    with transaction.atomic():
        try:
            with transaction.atomic():
                txn = LedgerTransaction.objects.create(
                    kind=kind,
                    idempotency_key=idempotency_key,
                    memo=memo[:500],
                    request_id=request_id,
                    created_by_id=created_by_id,
                )
        except IntegrityError:
            raise AlreadyDone(f"Already posted: {idempotency_key}") from None
        LedgerEntry.objects.bulk_create(
            [
                LedgerEntry(transaction=txn, account_id=pk, amount_nusd=amt)
                for pk, amt in merged.items()
            ]
        )
        for pk in sorted(set(merged) | set(held_deltas)):
            account = accounts.get(pk) or LedgerAccount.objects.get(pk=pk)
            if account.kind not in USER_ACCOUNT_KINDS:
                continue
            delta = merged.get(pk, 0)
            held = held_deltas.get(pk, 0)
            qs = LedgerAccount.objects.filter(pk=pk)
            if account.kind == AccountKind.WALLET and pk in overdrawn and not held:
                qs = qs.filter(Q(held_nusd=0) | Q(balance_nusd__gte=F("held_nusd") - delta))
            elif account.kind == AccountKind.WALLET:
                # new balance - new held >= 0  <=>  balance >= held + held_delta - delta
                qs = qs.filter(balance_nusd__gte=F("held_nusd") + (held - delta))
            elif pk in funded:
                qs = qs.filter(balance_nusd__gte=-delta)
            if held:
                qs = qs.filter(held_nusd__gte=-held)
            updated = qs.update(
                balance_nusd=F("balance_nusd") + delta, held_nusd=F("held_nusd") + held
            )
            if updated != 1:
                raise InsufficientBalance("The balance does not cover this amount.")
    return txn
