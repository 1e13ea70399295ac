"""Seller payouts: request (earnings → pending), paid (pending → clearing), rejected (back)."""

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from billing.errors import InsufficientBalance, InvalidAmount, InvalidState, NotFound
from billing.models import AccountKind, Payout, PayoutStatus, TransactionKind
from billing.money import NUSD_PER_USD, check_amount
from billing.services.ledger import account_for_user, account_platform, ledger_post
from billing.services.operators import (
    APPROVE_PAYOUT,
    PAY_PAYOUT,
    REJECT_PAYOUT,
    operator_check,
)
from mail.notices import email_send

PAYOUT_MINIMUM_NUSD = 10 * NUSD_PER_USD


def payout_request(*, seller, amount_nusd: int) -> Payout:
    """A seller asks to be paid; the amount leaves available earnings at once."""
    try:
        check_amount(amount_nusd, what="A payout")
    except ValueError as exc:
        raise InvalidAmount(str(exc)) from None
    if amount_nusd < PAYOUT_MINIMUM_NUSD:
        raise InvalidAmount("The minimum payout is $10.00.")
    with transaction.atomic():
        earnings = account_for_user(user_id=seller.pk, kind=AccountKind.EARNINGS)
        payout = Payout.objects.create(seller=seller, amount_nusd=amount_nusd)
        try:
            ledger_post(
                kind=TransactionKind.PAYOUT_REQUEST,
                idempotency_key=f"payout:{payout.pk}:request",
                memo=f"payout #{payout.pk} requested",
                lines=[
                    (earnings, -amount_nusd),
                    (account_platform(kind=AccountKind.PAYOUTS_PENDING), amount_nusd),
                ],
                funded_account_ids=[earnings.pk],
            )
        except InsufficientBalance:
            raise InsufficientBalance("That is more than your available earnings.") from None
    return payout


def _decide(*, payout_id: int, allowed: tuple[str, ...]) -> Payout:
    payout = Payout.objects.select_for_update().filter(pk=payout_id).first()
    if payout is None:
        raise NotFound(f"No payout #{payout_id}.")
    if payout.status not in allowed:
        raise InvalidState(f"Payout #{payout_id} is {payout.status}.")
    return payout


def payout_approve(*, payout_id: int, staff_user_id: int) -> Payout:
    operator_check(staff_user_id=staff_user_id, permission=APPROVE_PAYOUT)
    with transaction.atomic():
        payout = _decide(payout_id=payout_id, allowed=(PayoutStatus.REQUESTED,))
        payout.status = PayoutStatus.APPROVED
        payout.decided_by_id = staff_user_id
        payout.decided_at = timezone.now()
        payout.save(update_fields=["status", "decided_by", "decided_at"])
    return payout


def payout_mark_paid(*, payout_id: int, staff_user_id: int, note: str = "") -> Payout:
    """The money has left the platform (bank transfer done)."""
    operator_check(staff_user_id=staff_user_id, permission=PAY_PAYOUT)
    with transaction.atomic():
        payout = _decide(payout_id=payout_id, allowed=(PayoutStatus.APPROVED,))
        ledger_post(
            kind=TransactionKind.PAYOUT_PAID,
            idempotency_key=f"payout:{payout.pk}:final",
            memo=note or f"payout #{payout.pk} paid",
            created_by_id=staff_user_id,
            lines=[
                (account_platform(kind=AccountKind.PAYOUTS_PENDING), -payout.amount_nusd),
                (account_platform(kind=AccountKind.PAYOUTS_CLEARING), payout.amount_nusd),
            ],
        )
        payout.status = PayoutStatus.PAID
        payout.note = note[:300]
        payout.decided_by_id = staff_user_id
        payout.decided_at = timezone.now()
        payout.save(update_fields=["status", "note", "decided_by", "decided_at"])
        transaction.on_commit(lambda: _email_payout_paid(payout.pk))
    return payout


def _email_payout_paid(payout_id: int) -> None:
    payout = Payout.objects.select_related("seller").get(pk=payout_id)
    email_send(
        template_prefix="billing/email/payout_paid",
        to=payout.seller.email,
        context={
            "payout": payout,
            "earnings_url": f"{settings.DRAGONFLY_BASE_URL}{reverse('billing:earnings')}",
        },
    )


def payout_reject(*, payout_id: int, staff_user_id: int, reason: str) -> Payout:
    """Return the amount to the seller's available earnings."""
    if not reason.strip():
        raise InvalidState("A rejection needs a reason.")
    operator_check(staff_user_id=staff_user_id, permission=REJECT_PAYOUT)
    with transaction.atomic():
        payout = _decide(
            payout_id=payout_id, allowed=(PayoutStatus.REQUESTED, PayoutStatus.APPROVED)
        )
        ledger_post(
            kind=TransactionKind.PAYOUT_REJECTED,
            idempotency_key=f"payout:{payout.pk}:final",
            memo=reason,
            created_by_id=staff_user_id,
            lines=[
                (account_platform(kind=AccountKind.PAYOUTS_PENDING), -payout.amount_nusd),
                (
                    account_for_user(user_id=payout.seller_id, kind=AccountKind.EARNINGS),
                    payout.amount_nusd,
                ),
            ],
        )
        payout.status = PayoutStatus.REJECTED
        payout.note = reason[:300]
        payout.decided_by_id = staff_user_id
        payout.decided_at = timezone.now()
        payout.save(update_fields=["status", "note", "decided_by", "decided_at"])
    return payout
