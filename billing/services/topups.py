"""Stripe top-ups: start a Checkout Session, fulfil it exactly once from the verified webhook."""

import logging

from django.db import IntegrityError, transaction
from django.utils import timezone

from billing import stripe_gateway
from billing.errors import AlreadyDone, InvalidAmount
from billing.models import AccountKind, TopUp, TopUpStatus, TransactionKind
from billing.money import NUSD_PER_CENT, NUSD_PER_USD, usd_to_nusd
from billing.services.ledger import account_for_user, account_platform, ledger_post
from live.nudges import user_nudge

logger = logging.getLogger(__name__)

TOPUP_PRESETS_USD = (5, 20, 50, 100)
TOPUP_MIN_NUSD = 5 * NUSD_PER_USD
TOPUP_MAX_NUSD = 1000 * NUSD_PER_USD


def topup_amount_parse(*, value: str) -> int:
    """A top-up amount from user input: whole cents, $5 to $1000. Raises InvalidAmount."""
    try:
        amount = usd_to_nusd(value)
    except ValueError as exc:
        raise InvalidAmount(str(exc)) from None
    if amount % NUSD_PER_CENT:
        raise InvalidAmount("Top-ups are in whole cents.")
    if not TOPUP_MIN_NUSD <= amount <= TOPUP_MAX_NUSD:
        raise InvalidAmount("Top-ups are between $5 and $1,000.")
    return amount


def topup_create(*, user, amount_nusd: int) -> TopUp:
    """Record a pending top-up before asking Stripe for a Checkout Session."""
    if not TOPUP_MIN_NUSD <= amount_nusd <= TOPUP_MAX_NUSD or amount_nusd % NUSD_PER_CENT:
        raise InvalidAmount("Top-ups are between $5 and $1,000, in whole cents.")
    return TopUp.objects.create(user=user, requested_nusd=amount_nusd)


def topup_session_attach(*, topup: TopUp, session_id: str) -> None:
    TopUp.objects.filter(pk=topup.pk, stripe_session_id__isnull=True).update(
        stripe_session_id=session_id
    )
    topup.stripe_session_id = session_id


def topup_checkout_start(*, user, amount_nusd: int, success_url: str, cancel_url: str) -> str:
    """Create the top-up and its Checkout Session; returns the URL to send the buyer to.

    The Stripe call happens outside any database transaction (no lock held across the network).
    """
    topup = topup_create(user=user, amount_nusd=amount_nusd)
    session_id, url = stripe_gateway.checkout_session_create(
        amount_cents=amount_nusd // NUSD_PER_CENT,
        topup_id=topup.pk,
        user_id=user.pk,
        email=user.email,
        success_url=success_url,
        cancel_url=cancel_url,
    )
    topup_session_attach(topup=topup, session_id=session_id)
    return url


def _topup_locked(*, session_id: str, topup_id: str | None) -> TopUp | None:
    """The top-up for this Checkout Session, row-locked; binds the session on first sight."""
    if not session_id:
        return None
    topup = TopUp.objects.select_for_update().filter(stripe_session_id=session_id).first()
    if topup is None and topup_id and str(topup_id).isdigit():
        topup = (
            TopUp.objects.select_for_update()
            .filter(pk=int(topup_id), stripe_session_id__isnull=True)
            .first()
        )
        if topup is not None:
            topup.stripe_session_id = session_id
            topup.save(update_fields=["stripe_session_id"])
    return topup


def topup_fulfil(
    *,
    session_id: str,
    topup_id: str | None,
    amount_total_cents: object,
    currency: str,
    payment_intent: object = None,
) -> bool:
    """Credit a paid Checkout Session's amount_total to the buyer, exactly once. True if now.

    Concurrent and repeated deliveries serialise on the top-up row; the ledger transaction's
    unique idempotency key (`topup:<session>`) is a second guard. The session's PaymentIntent
    is kept: Stripe's later refunds and disputes of the charge name it (services/reversals.py).
    """
    if currency.lower() != "usd":
        logger.error("checkout session %s paid in %s; not credited", session_id, currency)
        return False
    if (
        isinstance(amount_total_cents, bool)
        or not isinstance(amount_total_cents, int)
        or amount_total_cents <= 0
    ):
        logger.error("checkout session %s has no positive amount_total", session_id)
        return False
    amount = amount_total_cents * NUSD_PER_CENT
    try:
        with transaction.atomic():
            topup = _topup_locked(session_id=session_id, topup_id=topup_id)
            if topup is None:
                logger.error("checkout session %s matches no top-up; not credited", session_id)
                return False
            if topup.status == TopUpStatus.PAID:
                return False
            txn = ledger_post(
                kind=TransactionKind.TOPUP,
                idempotency_key=f"topup:{session_id}",
                memo=f"Stripe Checkout {session_id}",
                lines=[
                    (account_platform(kind=AccountKind.STRIPE_CLEARING), -amount),
                    (account_for_user(user_id=topup.user_id, kind=AccountKind.WALLET), amount),
                ],
            )
            topup.status = TopUpStatus.PAID
            topup.amount_nusd = amount
            topup.transaction = txn
            topup.completed_at = timezone.now()
            if isinstance(payment_intent, str) and 0 < len(payment_intent) <= 255:
                topup.stripe_payment_intent = payment_intent
            topup.save(
                update_fields=[
                    "status",
                    "amount_nusd",
                    "transaction",
                    "completed_at",
                    "stripe_payment_intent",
                ]
            )
            user_nudge(user_id=topup.user_id)  # the open top-up page shows the credit
    except (AlreadyDone, IntegrityError):
        return False
    return True


def topup_fail(*, session_id: str, topup_id: str | None) -> bool:
    """Mark an unpaid top-up failed (async payment failed). Never touches a paid one."""
    with transaction.atomic():
        topup = _topup_locked(session_id=session_id, topup_id=topup_id)
        if topup is None or topup.status != TopUpStatus.PENDING:
            return False
        topup.status = TopUpStatus.FAILED
        topup.completed_at = timezone.now()
        topup.save(update_fields=["status", "completed_at"])
    return True
