"""Credit that does not come through Stripe: operator grants and adjustments (the signup credit is
in signup_credits.py)."""

import logging
import uuid

from django.db import transaction

from billing.errors import BillingError, InvalidAmount
from billing.models import AccountKind, LedgerTransaction, TransactionKind
from billing.money import NUSD_PER_USD, check_amount
from billing.services.ledger import account_for_user, account_platform, ledger_post
from billing.services.operators import ADJUST_WALLET, GRANT_CREDIT, operator_check

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


def credit_grant(
    *, user, amount_nusd: int, reason: str, staff_user_id: int | None = None
) -> LedgerTransaction:
    """Operators: grant promotional credit to a buyer's wallet (`grant_credit` passes no staff
    user: the shell operator acts; the admin passes the staff user, who must be one)."""
    _positive(amount_nusd)
    if not reason.strip():
        raise BillingError("A credit grant needs a reason.")
    if staff_user_id is not None:
        operator_check(staff_user_id=staff_user_id, permission=GRANT_CREDIT)
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
    operator_check(staff_user_id=staff_user_id, permission=ADJUST_WALLET)
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
