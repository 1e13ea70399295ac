"""Holds: reserve a request's worst-case cost before the upstream call, release it after.

Validation here, then one of two implementations with the same rules: on PostgreSQL the PL/pgSQL
functions of migration 0005 (one statement each, billing.services.fastpath), otherwise the ORM
(billing.services.holds_orm: SQLite, the embedded default).
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from billing.errors import BillingError, InsufficientBalance, InvalidAmount
from billing.models import Hold, HoldStatus
from billing.money import check_amount
from billing.services.fastpath import fastpath_enabled, hold_place_sql, hold_void_sql
from billing.services.holds_orm import hold_place_orm, hold_void_orm

logger = logging.getLogger(__name__)


def check_request_id(request_id: object) -> str:
    if not isinstance(request_id, str) or not request_id.strip() or len(request_id) > 100:
        raise BillingError("A request id is a non-empty string of at most 100 characters.")
    return request_id


def hold_check(*, request_id: str, amount_nusd: int) -> None:
    check_request_id(request_id)
    try:
        check_amount(amount_nusd, what="A hold")
    except ValueError as exc:
        raise InvalidAmount(str(exc)) from None


def hold_outcome(outcome: str) -> None:
    """Raise for the fast path's refusals; "placed" and "exists" (idempotent) pass."""
    if outcome == "no_wallet":
        raise InsufficientBalance("No credit: top up your balance to use the API.")
    if outcome == "insufficient":
        raise InsufficientBalance("Insufficient balance for this request: top up your credit.")


def hold_place(*, request_id: str, user_id: int, amount_nusd: int) -> None:
    """Reserve amount_nusd on the user's wallet for request_id, or raise InsufficientBalance.

    The balance check and the reservation are one conditional UPDATE
    (`SET held = held + x WHERE balance - held >= x`), so concurrent holds can never take the
    available balance below zero. Placing the same request id again does nothing.
    """
    hold_check(request_id=request_id, amount_nusd=amount_nusd)
    if not fastpath_enabled():
        hold_place_orm(request_id=request_id, user_id=user_id, amount_nusd=amount_nusd)
        return
    hold_outcome(hold_place_sql(request_id=request_id, user_id=user_id, amount_nusd=amount_nusd))


def hold_void(*, request_id: str, reason: str) -> None:
    """Release an unsettled hold. Does nothing for a settled, voided or unknown request id."""
    check_request_id(request_id)
    if fastpath_enabled():
        hold_void_sql(request_id=request_id, reason=reason)
    else:
        hold_void_orm(request_id=request_id, reason=reason)


def holds_reap(*, older_than_seconds: int | None = None) -> int:
    """Void active holds older than the TTL (their request died before settling). Returns the count."""
    ttl = settings.DRAGONFLY_HOLD_TTL_SECONDS if older_than_seconds is None else older_than_seconds
    cutoff = timezone.now() - timedelta(seconds=ttl)
    stale = list(
        Hold.objects.filter(status=HoldStatus.ACTIVE, created_at__lt=cutoff).values_list(
            "request_id", flat=True
        )
    )
    for request_id in stale:
        hold_void(request_id=request_id, reason="expired: the request never settled")
    if stale:
        logger.warning("voided %d expired holds", len(stale))
    return len(stale)
