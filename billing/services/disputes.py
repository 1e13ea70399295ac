"""Buyer disputes (billing policy rule 12): a buyer asks for one settled request's money back; an
operator approves (the existing refund, rule 9: buyer credited, seller clawed back) or rejects.

Opening is refused, with nothing written, for a request that is not the buyer's, already disputed,
already refunded, not charged to the buyer (an SLA refund or a cost of 0), or settled longer ago
than DRAGONFLY_DISPUTE_WINDOW_DAYS; and past the buyer's limits (DRAGONFLY_DISPUTES_OPEN_MAX
undecided, DRAGONFLY_DISPUTES_PER_DAY opened in 24 hours). The buyer's user row is locked while the
limits are counted, so two submissions at once cannot both slip under them.

A decision locks the dispute row first: of two operators deciding at once, the second waits, then
finds it decided and is told so (AlreadyDone); the refund itself is once per request anyway
(its idempotency key). Lock order: dispute, then usage record (the refund's own lock).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from billing.errors import AlreadyDone, InvalidInput, InvalidState, NotFound, TooMany
from billing.generation import REQUEST_ID
from billing.models import (
    DISPUTE_DETAIL_MAX,
    DISPUTE_NOTE_MAX,
    Dispute,
    DisputeReason,
    DisputeStatus,
    LedgerTransaction,
    UsageRecord,
)
from billing.services.operators import DECIDE_DISPUTE, REFUND_REQUEST, operator_check
from billing.services.settlement import request_refund
from mail.notices import email_send

REFUND_MEMO_MAX = LedgerTransaction._meta.get_field("memo").max_length or 500


def _text(value: object, *, what: str, limit: int) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"The {what} must be text.")
    value = value.strip()
    if len(value) > limit:
        raise InvalidInput(f"The {what} is at most {limit:,} characters.")
    return value


def dispute_refusal(
    *,
    request_id: str,
    refunded: bool,
    sla_breached: bool,
    buyer_debit_nusd: int,
    settled_at: datetime,
    now: datetime,
) -> str | None:
    """Why this request cannot be disputed, or None: the one rule, which the usage page also
    asks before it offers the form."""
    if refunded:
        return f"Request {request_id} was already refunded."
    if sla_breached:
        return f"Request {request_id} was not charged: its listing broke the speed it promised."
    if buyer_debit_nusd == 0:
        return f"Request {request_id} cost you nothing; there is nothing to refund."
    days = settings.DRAGONFLY_DISPUTE_WINDOW_DAYS
    if settled_at < now - timedelta(days=days):
        return (
            f"Request {request_id} settled more than {days} days ago: it can no longer be disputed."
        )
    return None


def dispute_open(*, buyer, request_id: object, reason: object, detail: object = "") -> Dispute:
    """The buyer disputes one settled request of theirs (see the module docstring for refusals)."""
    if not isinstance(request_id, str) or not REQUEST_ID.fullmatch(request_id):
        raise NotFound("No such request of yours.")
    if not isinstance(reason, str) or reason not in DisputeReason.values:
        raise InvalidInput(f"Choose a reason: one of {', '.join(DisputeReason.values)}.")
    detail = _text(detail, what="detail", limit=DISPUTE_DETAIL_MAX)
    now = timezone.now()
    with transaction.atomic():
        get_user_model().objects.select_for_update().filter(pk=buyer.pk).first()
        record = (
            UsageRecord.objects.select_for_update()
            .filter(request_id=request_id, buyer_id=buyer.pk)
            .first()
        )
        if record is None:
            raise NotFound(f"No request {request_id} of yours.")
        if Dispute.objects.filter(usage=record).exists():
            raise AlreadyDone(f"Request {request_id} is already disputed.")
        refusal = dispute_refusal(
            request_id=request_id,
            refunded=record.refunded_at is not None,
            sla_breached=record.sla_breached,
            buyer_debit_nusd=record.buyer_debit_nusd,
            settled_at=record.created_at,
            now=now,
        )
        if refusal is not None:
            raise InvalidState(refusal)
        mine = Dispute.objects.filter(buyer_id=buyer.pk)
        if mine.filter(status=DisputeStatus.OPEN).count() >= settings.DRAGONFLY_DISPUTES_OPEN_MAX:
            raise TooMany(
                f"You have {settings.DRAGONFLY_DISPUTES_OPEN_MAX} disputes awaiting a decision; "
                "open another once one is decided."
            )
        if mine.filter(created_at__gte=now - timedelta(days=1)).count() >= (
            settings.DRAGONFLY_DISPUTES_PER_DAY
        ):
            raise TooMany(
                f"You opened {settings.DRAGONFLY_DISPUTES_PER_DAY} disputes in the last 24 hours; "
                "try again tomorrow."
            )
        try:
            with transaction.atomic():
                return Dispute.objects.create(
                    usage=record,
                    buyer_id=record.buyer_id,
                    seller_id=record.seller_id,
                    reason=reason,
                    detail=detail,
                )
        except IntegrityError:  # the one-per-request rule, should a check above ever be bypassed
            raise AlreadyDone(f"Request {request_id} is already disputed.") from None


def _decide(*, dispute_id: int) -> Dispute:
    """The open dispute, locked; NotFound or AlreadyDone otherwise. Inside a transaction."""
    dispute = Dispute.objects.select_for_update().filter(pk=dispute_id).first()
    if dispute is None:
        raise NotFound(f"No dispute #{dispute_id}.")
    if dispute.status != DisputeStatus.OPEN:
        raise AlreadyDone(f"Dispute #{dispute.pk} was already {dispute.get_status_display()}.")
    return dispute


def _record(dispute: Dispute, *, status: str, note: str, staff_user_id: int) -> None:
    dispute.status = status
    dispute.note = note
    dispute.decided_by_id = staff_user_id
    dispute.decided_at = timezone.now()
    dispute.save(update_fields=["status", "note", "decided_by", "decided_at"])
    transaction.on_commit(lambda: _email_decision(dispute.pk))


def dispute_approve(*, dispute_id: int, staff_user_id: int, note: object = "") -> Dispute:
    """Refund the disputed request in full through request_refund (its reason names the
    dispute) and mark the dispute approved, once. Needs the decide and the refund permissions."""
    note = _text(note, what="note", limit=DISPUTE_NOTE_MAX)
    operator_check(staff_user_id=staff_user_id, permission=DECIDE_DISPUTE)
    operator_check(staff_user_id=staff_user_id, permission=REFUND_REQUEST)
    with transaction.atomic():
        dispute = _decide(dispute_id=dispute_id)
        request_id = UsageRecord.objects.values_list("request_id", flat=True).get(
            pk=dispute.usage_id
        )
        # The refund's memo names the dispute; the whole note stays on the dispute.
        memo = f"dispute #{dispute.pk} approved ({dispute.reason})" + (f": {note}" if note else "")
        request_refund(
            request_id=request_id, reason=memo[:REFUND_MEMO_MAX], staff_user_id=staff_user_id
        )
        _record(dispute, status=DisputeStatus.APPROVED, note=note, staff_user_id=staff_user_id)
    return dispute


def dispute_reject(*, dispute_id: int, staff_user_id: int, note: object) -> Dispute:
    """Close the dispute without moving money; the note tells the buyer why."""
    note = _text(note, what="note", limit=DISPUTE_NOTE_MAX)
    if not note:
        raise InvalidInput("A rejection needs a note for the buyer.")
    operator_check(staff_user_id=staff_user_id, permission=DECIDE_DISPUTE)
    with transaction.atomic():
        dispute = _decide(dispute_id=dispute_id)
        _record(dispute, status=DisputeStatus.REJECTED, note=note, staff_user_id=staff_user_id)
    return dispute


def _email_decision(dispute_id: int) -> None:
    """The buyer hears every decision; the seller hears of an approval (money left their
    earnings), without the buyer's identity."""
    dispute = Dispute.objects.select_related("usage", "buyer", "seller").get(pk=dispute_id)
    base = settings.DRAGONFLY_BASE_URL
    email_send(
        template_prefix="billing/email/dispute_decided",
        to=dispute.buyer.email,
        context={"dispute": dispute, "disputes_url": f"{base}{reverse('billing:disputes')}"},
    )
    if dispute.status == DisputeStatus.APPROVED:
        email_send(
            template_prefix="billing/email/dispute_approved_seller",
            to=dispute.seller.email,
            context={
                "dispute": dispute,
                "sale_url": f"{base}{reverse('seller_sale_detail', args=[dispute.usage.request_id])}",
            },
        )
