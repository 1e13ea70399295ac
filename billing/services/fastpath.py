"""The money fast path: hold, settle and void as one call each to the PL/pgSQL functions of
billing migration 0005 and its successors, on PostgreSQL.

One `SELECT df_...(...)` per operation: in autocommit it is its own transaction (one round trip,
no BEGIN/SAVEPOINT/COMMIT). Inside a caller's transaction it runs in a savepoint, so a refused or
failed call leaves that transaction usable, exactly like the ORM path's nested atomic blocks.
`DRAGONFLY_BILLING_SQL_FASTPATH = False` (a setting) forces the ORM path; SQLite always uses it.
"""

from collections.abc import Sequence
from contextlib import nullcontext
from typing import Any

import orjson
from django.conf import settings
from django.db import DatabaseError, connection, transaction

from billing.errors import BillingError, InsufficientBalance
from billing.pricing import settlement_price
from billing.settlement_data import Settlement

# SQLSTATEs raised by the functions for broken invariants (never for business outcomes).
SQLSTATE_UNCOVERED = "DF001"  # the wallet cannot cover a settlement's debit
SQLSTATE_VOID_MISMATCH = "DF002"  # the wallet holds less than the hold being voided


def fastpath_enabled() -> bool:
    # The engine's name, not `connection.vendor`: on the event loop every new task context would
    # build a database wrapper just to answer this (the gateway asks on each hold and settle).
    engine = settings.DATABASES["default"]["ENGINE"]
    return settings.DRAGONFLY_BILLING_SQL_FASTPATH and engine.endswith("postgresql")


def fastpath_error(exc: BaseException) -> Exception | None:
    """The billing error for a function's own SQLSTATE (a psycopg error), else None."""
    state = getattr(exc, "sqlstate", None)
    if state == SQLSTATE_UNCOVERED:
        return InsufficientBalance("The balance does not cover this amount.")
    if state == SQLSTATE_VOID_MISMATCH:
        return BillingError(str(exc.diag.message_primary))  # type: ignore[attr-defined]
    return None


def _call(sql: str, params: Sequence[Any]) -> tuple[Any, ...]:
    """Run one statement and return its one row; map the functions' own errors to billing's."""
    in_transaction = connection.in_atomic_block
    try:
        with (
            transaction.atomic() if in_transaction else nullcontext(),
            connection.cursor() as cursor,
        ):
            cursor.execute(sql, params)
            row = cursor.fetchone()
    except DatabaseError as exc:
        mapped = fastpath_error(exc.__cause__) if exc.__cause__ is not None else None
        if mapped is not None:
            raise mapped from None
        raise
    if row is None:  # not an assert: `python -O` would strip it from the money path
        raise RuntimeError("a money function answered no row")
    return tuple(row)


HOLD_SQL = "SELECT df_hold_place(%s, %s, %s, %s)"
VOID_SQL = "SELECT df_hold_void(%s, %s)"


def hold_place_sql(*, request_id: str, user_id: int, amount_nusd: int) -> str:
    """'placed' | 'exists' | 'insufficient' | 'no_wallet'."""
    # synchronous_commit off only when the hold is its own transaction (docs/money.md).
    relaxed = not connection.in_atomic_block
    (outcome,) = _call(HOLD_SQL, (request_id, user_id, amount_nusd, relaxed))
    return str(outcome)


def hold_void_sql(*, request_id: str, reason: str) -> str:
    """'voided' | 'noop'."""
    (outcome,) = _call(VOID_SQL, (request_id, reason))
    return str(outcome)


SETTLE_SQL = (
    "SELECT status, cost_nusd, buyer_debit_nusd, overrun_nusd, seller_credit_nusd, fee_nusd,"
    " fee_profile_id, fee_bps FROM df_settle_apply("
    "%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s, %s,"
    " %s, %s, %s, %s, %s)"
)
REPRICE_ATTEMPTS = 3  # an operator changing the seller's fee between two calls, twice: give up

# seller id -> (fee profile id, fee bps) as df_settle_apply last reported it. A settlement is
# priced with it; if the seller's fee changed (or it is not known yet), df_settle_apply answers
# 'reprice' with the current one, writes nothing, and the settlement is priced again.
_fees: dict[int, tuple[int | None, int]] = {}


def fee_learn(*, seller_id: int) -> None:
    """Look the seller's fee profile up now, so their next settlement is priced right first time."""
    from billing.selectors import fee_profile_for_seller

    _fees[seller_id] = fee_profile_for_seller(seller_id=seller_id)


def settle_fields(s: Settlement) -> dict[str, Any]:
    """df_settle_apply's arguments by name (without the p_ prefix, without the default fee): the
    settlement's fields and its price (billing.pricing) at the seller's fee as last known."""
    profile_id, bps = _fees.get(s.seller_id, (None, 0))
    # Only cost and fee are sent: the split of the cost between the buyer's debit and the overrun
    # needs the locked hold (or balance), so df_settle_apply applies it (pricing.price's rule).
    figures = settlement_price(s, fee_bps=bps, coverable_nusd=0)
    return s.as_dict() | {
        "cost_nusd": figures.cost_nusd,
        "fee_nusd": figures.fee_nusd,
        "fee_profile_id": profile_id,
        "fee_bps": bps,
        "sla_breached": figures.sla_breached,
        "sla_waived_nusd": figures.sla_waived_nusd,
    }


def settle_params(s: Settlement) -> tuple[Any, ...]:
    """df_settle_apply's arguments in order (the route as JSON text, cast to jsonb by SETTLE_SQL)."""
    fields = settle_fields(s)
    fields["route"] = None if s.route is None else orjson.dumps(s.route).decode()
    return (*fields.values(), settings.DRAGONFLY_DEFAULT_FEE_BPS)


def settle_repriced(s: Settlement, row: tuple[Any, ...]) -> bool:
    """True if df_settle_apply answered 'reprice' (and the seller's current fee is now known)."""
    if row[0] != "reprice":
        return False
    _fees[s.seller_id] = (row[6], row[7])
    return True


def request_settle_sql(s: Settlement) -> tuple[Any, ...]:
    """(status, cost, buyer_debit, overrun, seller_credit, fee, fee_profile_id, fee_bps); status
    is 'settled' | 'already_settled' | 'wrong_buyer'."""
    for _ in range(REPRICE_ATTEMPTS):
        row = _call(SETTLE_SQL, settle_params(s))
        if not settle_repriced(s, row):
            return row
    raise BillingError(f"The seller's fee kept changing while request {s.request_id} settled.")
