"""The signup credit: once per canonical address, within daily limits per client network and per
email domain; over a limit it waits for an operator (docs/signup-credit.md)."""

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from billing.errors import BillingError, InvalidState, NotFound
from billing.models import (
    AccountKind,
    SignupCreditQuota,
    SignupCreditRequest,
    SignupCreditStatus,
    SignupGrant,
    SignupLimit,
    TransactionKind,
)
from billing.money import usd_to_nusd
from billing.services.ledger import account_for_user, account_platform, ledger_post
from billing.services.operators import DECIDE_SIGNUP_CREDIT, operator_check
from billing.signup_limits import domain_is_exempt, email_domain, signup_network


class _LimitFull(Exception):
    def __init__(self, limit: str) -> None:
        self.limit = limit


def _amount_nusd() -> int:
    return usd_to_nusd(settings.DRAGONFLY_SIGNUP_CREDIT_USD)


def _decided(*, canonical: str) -> bool:
    return (
        SignupGrant.objects.filter(email_canonical=canonical).exists()
        or SignupCreditRequest.objects.filter(email_canonical=canonical).exists()
    )


def _credit_post(*, user_id: int, canonical: str, amount_nusd: int) -> None:
    txn = ledger_post(
        kind=TransactionKind.SIGNUP_CREDIT,
        idempotency_key=f"signup:{canonical}",
        memo="signup credit",
        lines=[
            (account_platform(kind=AccountKind.PROMOTIONS), -amount_nusd),
            (account_for_user(user_id=user_id, kind=AccountKind.WALLET), amount_nusd),
        ],
    )
    SignupGrant.objects.create(
        email_canonical=canonical, user_id=user_id, amount_nusd=amount_nusd, transaction=txn
    )


def _quota_take(*, scope: str, key: str, limit: int) -> bool:
    """Take one of today's `limit` slots for (scope, key); False if they are all taken.

    The insert waits on the unique index for a concurrent twin's row; the UPDATE locks the row and
    PostgreSQL re-checks `used < limit` after a concurrent taker commits: never check-then-act.
    """
    day = timezone.now().date()
    SignupCreditQuota.objects.bulk_create(
        [SignupCreditQuota(scope=scope, key=key, day=day, used=0)], ignore_conflicts=True
    )
    taken = SignupCreditQuota.objects.filter(scope=scope, key=key, day=day, used__lt=limit).update(
        used=F("used") + 1
    )
    return taken == 1


def _quotas_take(*, network: str, domain: str) -> str:
    """Blank if every limit had room (each now counts this credit), else the limit that was full
    (and nothing is counted). Always in the same order, address before domain, so two
    verifications never wait on each other's rows crosswise."""
    limits = []
    if network:
        limits.append(
            (SignupLimit.ADDRESS, network, settings.DRAGONFLY_SIGNUP_CREDITS_PER_IP_PER_DAY)
        )
    if domain and not domain_is_exempt(domain):
        limits.append(
            (SignupLimit.DOMAIN, domain, settings.DRAGONFLY_SIGNUP_CREDITS_PER_DOMAIN_PER_DAY)
        )
    try:
        with transaction.atomic():  # a full second limit gives back the first one's slot
            for scope, key, limit in limits:
                if not _quota_take(scope=scope, key=key, limit=limit):
                    raise _LimitFull(scope)
    except _LimitFull as full:
        return full.limit
    return ""


def signup_credit_grant(*, user) -> bool:
    """Grant DRAGONFLY_SIGNUP_CREDIT_USD once per canonical email address; True if granted now.

    Within today's limits for the user's signup network and email domain the credit is granted at
    once; over one, the account keeps working and the credit waits as a pending
    SignupCreditRequest for an operator. Safe to call twice or concurrently: the request record is
    unique on email_canonical, so a second caller (for this user or another account with the same
    canonical address) gets False and takes no slot.
    """
    canonical = (user.email_canonical or "").strip()
    if not canonical:
        raise BillingError("The user has no canonical email address yet; no credit granted.")
    amount = _amount_nusd()
    if amount == 0 or _decided(canonical=canonical):
        return False
    network = signup_network(user.signup_ip)
    domain = email_domain(canonical)
    try:
        with transaction.atomic():
            # First, so a concurrent twin waits on this row's unique index before any slot is taken.
            record = SignupCreditRequest.objects.create(
                email_canonical=canonical, user=user, signup_network=network, email_domain=domain
            )
            full = _quotas_take(network=network, domain=domain)
            if full:
                record.status, record.held_by = SignupCreditStatus.PENDING, full
                record.save(update_fields=["status", "held_by"])
                return False
            _credit_post(user_id=user.pk, canonical=canonical, amount_nusd=amount)
    except (IntegrityError, BillingError):
        if _decided(canonical=canonical):
            return False  # decided concurrently
        raise
    return True


def _decider_check(*, staff_user_id: int) -> None:
    operator_check(staff_user_id=staff_user_id, permission=DECIDE_SIGNUP_CREDIT)


def _pending_locked(*, request_id: int) -> SignupCreditRequest:
    record = SignupCreditRequest.objects.select_for_update().filter(pk=request_id).first()
    if record is None:
        raise NotFound(f"No signup credit request #{request_id}.")
    if record.status != SignupCreditStatus.PENDING:
        raise InvalidState(f"The signup credit of {record.email_canonical} is {record.status}.")
    return record


def signup_credit_approve(*, request_id: int, staff_user_id: int) -> SignupCreditRequest:
    """Grant a held signup credit, exactly once: the row lock and the pending status decide, and
    the grant's unique canonical address and ledger idempotency key are a second guard."""
    _decider_check(staff_user_id=staff_user_id)
    amount = _amount_nusd()
    if amount == 0:
        raise InvalidState("The signup credit is set to $0; there is nothing to grant.")
    with transaction.atomic():
        record = _pending_locked(request_id=request_id)
        _credit_post(user_id=record.user_id, canonical=record.email_canonical, amount_nusd=amount)
        record.status = SignupCreditStatus.APPROVED
        record.decided_by_id = staff_user_id
        record.decided_at = timezone.now()
        record.save(update_fields=["status", "decided_by", "decided_at"])
    return record


def signup_credit_reject(*, request_id: int, staff_user_id: int) -> SignupCreditRequest:
    """Refuse a held signup credit; the account keeps working without it."""
    _decider_check(staff_user_id=staff_user_id)
    with transaction.atomic():
        record = _pending_locked(request_id=request_id)
        record.status = SignupCreditStatus.REJECTED
        record.decided_by_id = staff_user_id
        record.decided_at = timezone.now()
        record.save(update_fields=["status", "decided_by", "decided_at"])
    return record
