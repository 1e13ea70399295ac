"""Credit that does not come through Stripe: the signup credit, operator grants and adjustments."""

import logging
import uuid

from django.conf import settings
from django.db import IntegrityError, transaction

from billing.errors import BillingError, InvalidAmount
from billing.models import AccountKind, LedgerTransaction, SignupGrant, TransactionKind
from billing.money import NUSD_PER_USD, check_amount, usd_to_nusd
from billing.services.ledger import account_for_user, account_platform, ledger_post
from billing.services.operators import operator_check

logger = logging.getLogger(__name__)

# One grant or adjustment never moves more than this; a larger figure is a typo (docs/money.md).
OPERATOR_MAX_NUSD = 10_000 * NUSD_PER_USD


def _positive(amount_nusd: int) -> int:
    try:
        check_amount(amount_nusd)
    except ValueError as exc:
        raise InvalidAmount(str(exc)) from None
    if amount_nusd > OPERATOR_MAX_NUSD:
        raise InvalidAmount("One grant or adjustment moves at most $10,000.")
    return amount_nusd


def signup_credit_grant(*, user) -> bool:
    """Grant DRAGONFLY_SIGNUP_CREDIT_USD once per canonical email address; True if granted now.

    Safe to call twice or concurrently: the grant record is unique on email_canonical, so a second
    caller (for this user or another account with the same canonical address) gets False.
    """
    canonical = (user.email_canonical or "").strip()
    if not canonical:
        raise BillingError("The user has no canonical email address yet; no credit granted.")
    amount = usd_to_nusd(settings.DRAGONFLY_SIGNUP_CREDIT_USD)
    if amount == 0:
        return False
    if SignupGrant.objects.filter(email_canonical=canonical).exists():
        return False
    try:
        with transaction.atomic():
            txn = ledger_post(
                kind=TransactionKind.SIGNUP_CREDIT,
                idempotency_key=f"signup:{canonical}",
                memo="signup credit",
                lines=[
                    (account_platform(kind=AccountKind.PROMOTIONS), -amount),
                    (account_for_user(user_id=user.pk, kind=AccountKind.WALLET), amount),
                ],
            )
            SignupGrant.objects.create(
                email_canonical=canonical, user=user, amount_nusd=amount, transaction=txn
            )
    except (IntegrityError, BillingError):
        if SignupGrant.objects.filter(email_canonical=canonical).exists():
            return False  # granted concurrently
        raise
    return True


def credit_grant(
    *, user, amount_nusd: int, reason: str, staff_user_id: int | None = None
) -> LedgerTransaction:
    """Operators: grant promotional credit to a buyer's wallet (`grant_credit` passes no staff
    user: the shell operator acts; the admin passes the staff user, who must be one)."""
    _positive(amount_nusd)
    if not reason.strip():
        raise BillingError("A credit grant needs a reason.")
    if staff_user_id is not None:
        operator_check(staff_user_id=staff_user_id)
    with transaction.atomic():  # a refused posting leaves no freshly created account behind
        return ledger_post(
            kind=TransactionKind.GRANT,
            idempotency_key=f"grant:{uuid.uuid4()}",
            memo=reason,
            created_by_id=staff_user_id,
            lines=[
                (account_platform(kind=AccountKind.PROMOTIONS), -amount_nusd),
                (account_for_user(user_id=user.pk, kind=AccountKind.WALLET), amount_nusd),
            ],
        )


def wallet_adjust(*, user, amount_nusd: int, reason: str, staff_user_id: int) -> LedgerTransaction:
    """Operators: move a buyer's wallet up or down (signed amount) against the adjustments account.

    A negative adjustment may not take the available balance below zero.
    """
    if isinstance(amount_nusd, bool) or not isinstance(amount_nusd, int) or amount_nusd == 0:
        raise InvalidAmount("An adjustment is a non-zero whole number of nano-USD.")
    _positive(abs(amount_nusd))
    if not reason.strip():
        raise BillingError("An adjustment needs a reason.")
    operator_check(staff_user_id=staff_user_id)
    with transaction.atomic():  # a refused debit leaves no freshly created account behind
        return ledger_post(
            kind=TransactionKind.ADJUSTMENT,
            idempotency_key=f"adjust:{uuid.uuid4()}",
            memo=reason,
            created_by_id=staff_user_id,
            lines=[
                (account_platform(kind=AccountKind.ADJUSTMENTS), -amount_nusd),
                (account_for_user(user_id=user.pk, kind=AccountKind.WALLET), amount_nusd),
            ],
        )
