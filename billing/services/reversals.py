"""Stripe taking top-up money back: a refund, or a dispute when it is opened (a chargeback).

Each is booked once per Stripe event as one balanced ledger transaction debiting the buyer's
wallet: a refund against Stripe clearing (the exact reverse of the top-up), a dispute against
the chargebacks account. The wallet may go below zero: the platform was already paid out of it
(the buyer spent the credit), and the negative balance is what the buyer owes. A negative wallet
refuses every hold, so the buyer's requests get the contract's 403 "Insufficient balance" until
a top-up brings it above zero (docs/money.md, "Refunds and disputes from Stripe").

Holds: the database allows a wallet below its held amount only while nothing is held (a request
in flight settles against its hold, and could not once the wallet is negative). So when the debit
is more than the available balance, the wallet's active holds are voided in the same transaction
as the debit. The booking first closes the wallet's holds gate (migration 0015: every hold
placement passes it), so no new hold can land; then it locks the holds and the wallet in the
settlement's order, hold rows before the wallet, so a settlement in progress finishes first. Their
requests then settle as after the reaper: the buyer pays what is available (nothing, here) and
the overrun account the rest.
"""

import logging
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models import Sum

from billing.errors import AlreadyDone, BillingError, InvalidAmount, NotFound
from billing.models import (
    AccountKind,
    Hold,
    HoldStatus,
    LedgerAccount,
    ReversalKind,
    StripeReversal,
    TopUp,
    TopUpStatus,
    TransactionKind,
)
from billing.money import NUSD_PER_CENT
from billing.services.holds import hold_void
from billing.services.holds_orm import wallet_holds_gate
from billing.services.ledger import account_for_user, account_platform, ledger_post

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReversalResult:
    booked: bool  # False: this event was booked before (a redelivery)
    debited_nusd: int
    balance_nusd: int  # the wallet's balance afterwards


def _text(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 255:
        raise InvalidAmount(f"The Stripe event has no valid {what}.")
    return value


def _cents(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10**11:
        raise InvalidAmount(f"The Stripe event's {what} is not a whole number of cents.")
    return value * NUSD_PER_CENT


def topup_reversal_book(
    *,
    event_id: object,
    kind: str,
    stripe_object_id: object,
    payment_intent: object,
    amount_cents: object,
    currency: str,
    reason: str = "",
) -> ReversalResult:
    """Book a verified Stripe event that takes top-up money back, exactly once per event id.

    `amount_cents`: for a refund, the charge's cumulative `amount_refunded` (the new part is
    booked, so out-of-order partial refunds are booked once in total); for a dispute, its amount.
    The wallet is debited at most what is left of the top-up after earlier reversals. Raises
    NotFound when no paid top-up has this PaymentIntent (the webhook answers 503: Stripe retries)
    and InvalidAmount for an event without the fields this needs.
    """
    event = _text(event_id, "event id")
    object_id = _text(stripe_object_id, "charge or dispute id")
    intent = _text(payment_intent, "payment intent")
    if kind not in ReversalKind.values:
        raise BillingError(f"Unknown reversal kind {kind!r}.")
    if str(currency).lower() != "usd":
        raise InvalidAmount(f"Stripe reversed {currency!r}, not USD; book it by hand.")
    amount_nusd = _cents(amount_cents, "amount")
    existing = StripeReversal.objects.filter(event_id=event).first()
    if existing is not None:
        return _already(existing)
    topup = TopUp.objects.filter(stripe_payment_intent=intent, status=TopUpStatus.PAID).first()
    if topup is None:
        raise NotFound(f"No paid top-up has the payment intent {intent}.")
    return _book(
        event_id=event,
        kind=kind,
        stripe_object_id=object_id,
        topup_id=topup.pk,
        amount_nusd=amount_nusd,
        reason=reason,
    )


def _already(reversal: StripeReversal) -> ReversalResult:
    wallet = account_for_user(user_id=reversal.user_id, kind=AccountKind.WALLET)
    return ReversalResult(
        booked=False, debited_nusd=reversal.debited_nusd, balance_nusd=wallet.balance_nusd
    )


def _book(
    *, event_id: str, kind: str, stripe_object_id: str, topup_id: int, amount_nusd: int, reason: str
) -> ReversalResult:
    """Book the event in one transaction."""
    try:
        with transaction.atomic():
            # The top-up row serialises every event of one charge (and concurrent redeliveries):
            # the sums below cannot change under us. Lock order as topup_fulfil: top-up, wallet.
            topup = TopUp.objects.select_for_update().get(pk=topup_id)
            existing = StripeReversal.objects.filter(event_id=event_id).first()
            if existing is None and kind == ReversalKind.DISPUTE:
                existing = StripeReversal.objects.filter(
                    kind=ReversalKind.DISPUTE, stripe_object_id=stripe_object_id
                ).first()
            if existing is not None:
                return _already(existing)
            earlier = topup.reversals.aggregate(debited=Sum("debited_nusd"))["debited"] or 0
            if kind == ReversalKind.REFUND:
                refunded = (
                    topup.reversals.filter(kind=ReversalKind.REFUND).aggregate(
                        s=Sum("reported_nusd")
                    )["s"]
                    or 0
                )
                reported = max(amount_nusd - refunded, 0)
            else:
                reported = amount_nusd
            debit = max(min(reported, topup.amount_nusd - earlier), 0)
            wallet = account_for_user(user_id=topup.user_id, kind=AccountKind.WALLET)
            wallet_holds_gate(wallet.pk, close=True)
            holds = list(
                Hold.objects.select_for_update()
                .filter(account=wallet, status=HoldStatus.ACTIVE)
                .order_by("id")
                .values_list("request_id", "amount_nusd")
            )
            wallet = LedgerAccount.objects.select_for_update().get(pk=wallet.pk)
            if debit > wallet.available_nusd and wallet.held_nusd > 0:
                if wallet.held_nusd != sum(amount for _, amount in holds):
                    raise BillingError(
                        f"Wallet {wallet.pk} holds {wallet.held_nusd} nusd, its active holds "
                        f"{sum(amount for _, amount in holds)}; the event was not booked."
                    )
                for request_id, _ in holds:
                    hold_void(
                        request_id=request_id, reason=f"the wallet was debited by Stripe {kind}"
                    )
                wallet.refresh_from_db()
            txn = None
            if debit:
                counter = (
                    AccountKind.STRIPE_CLEARING
                    if kind == ReversalKind.REFUND
                    else AccountKind.CHARGEBACKS
                )
                txn = ledger_post(
                    kind=TransactionKind.STRIPE_REFUND
                    if kind == ReversalKind.REFUND
                    else TransactionKind.CHARGEBACK,
                    idempotency_key=f"stripe:{event_id}",
                    memo=f"Stripe {kind} {stripe_object_id} of top-up #{topup.pk}"
                    + (f" ({reason})" if reason else ""),
                    lines=[(wallet, -debit), (account_platform(kind=counter), debit)],
                    overdrawn_wallet_ids=[wallet.pk],
                )
            StripeReversal.objects.create(
                event_id=event_id,
                kind=kind,
                stripe_object_id=stripe_object_id,
                topup=topup,
                user_id=topup.user_id,
                reported_nusd=reported,
                debited_nusd=debit,
                reason=reason[:100],
                transaction=txn,
            )
    except (AlreadyDone, IntegrityError):
        # Booked meanwhile by a delivery that did not queue on the top-up row (cannot happen
        # while every booking locks it first; kept so a redelivery never raises).
        existing = StripeReversal.objects.filter(event_id=event_id).first()
        if existing is None:
            raise
        return _already(existing)
    wallet.refresh_from_db()
    if wallet.balance_nusd < 0:
        logger.warning(
            "Stripe %s %s took the wallet of user %s to %d nusd; its requests are refused",
            kind,
            stripe_object_id,
            topup.user_id,
            wallet.balance_nusd,
        )
    return ReversalResult(booked=True, debited_nusd=debit, balance_nusd=wallet.balance_nusd)
