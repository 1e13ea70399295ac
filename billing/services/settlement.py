"""Settlement: charge a request's actual usage exactly once, release its hold, pay seller and fee.

The policy (docs/billing-policy.md): the gateway passes the upstream-reported usage, or the units
actually delivered; an upstream that failed before any content costs nothing; prompt units are
billed once the upstream accepted the request, even if the client disconnected before content.

What a request costs is billing.pricing's one function. Validation here, then one of two
implementations of the booking: on PostgreSQL the df_request_settle function (one statement,
billing.services.fastpath), otherwise the ORM (billing.services.settlement_orm: SQLite, the
embedded default), which books billing.pricing.price's figures.
"""

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from billing.errors import AlreadyDone, BillingError, InvalidAmount, InvalidState, NotFound
from billing.models import (
    AccountKind,
    LedgerAccount,
    LedgerTransaction,
    TransactionKind,
    UsageRecord,
)
from billing.money import MAX_PRICE_PER_MILLION_NUSD, MAX_UNITS
from billing.pricing import settlement_price
from billing.services.fastpath import fastpath_enabled, request_settle_sql
from billing.services.holds import check_request_id
from billing.services.ledger import account_for_user, account_platform, ledger_post
from billing.services.operators import REFUND_REQUEST, operator_check
from billing.services.overruns import overrun_report
from billing.services.settlement_orm import result_from_record, settle_orm
from billing.settlement_data import OUTCOMES, Settlement, SettleResult

PRICE_UNITS = ("token", "character")


def _nonneg_int(value: object, *, what: str, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value > maximum:
        raise InvalidAmount(f"{what} must be a whole number between 0 and {maximum}.")
    return value


def settlement_validate(settlement: Settlement) -> None:
    """Refuse a malformed settlement before anything is written."""
    check_request_id(settlement.request_id)
    if settlement.outcome not in OUTCOMES:
        raise BillingError(f"Unknown outcome {settlement.outcome!r}.")
    if settlement.price_unit not in PRICE_UNITS:
        raise BillingError(f"Unknown price unit {settlement.price_unit!r}.")
    _nonneg_int(settlement.ask_input_nusd, what="The input ask", maximum=MAX_PRICE_PER_MILLION_NUSD)
    _nonneg_int(
        settlement.ask_output_nusd, what="The output ask", maximum=MAX_PRICE_PER_MILLION_NUSD
    )
    _nonneg_int(settlement.input_units, what="Input units", maximum=MAX_UNITS)
    _nonneg_int(settlement.output_units, what="Output units", maximum=MAX_UNITS)
    if settlement.lease_id is not None:
        check_request_id(settlement.lease_id)
    if settlement.route is not None and not isinstance(settlement.route, dict):
        raise BillingError("A settlement's route must be a JSON object.")
    for name in ("ttft_ms", "duration_ms", "sla_max_ttft_ms"):
        value = getattr(settlement, name)
        if value is not None:
            _nonneg_int(value, what=name, maximum=2**31 - 1)


def billable_cost_nusd(settlement: Settlement) -> int:
    """What the request costs under the billing policy (billing.pricing)."""
    return settlement_price(settlement, fee_bps=0, coverable_nusd=0).cost_nusd


def request_settle(*, settlement: Settlement) -> SettleResult:
    """Settle one request exactly once (idempotent on request_id; safe from any thread).

    Buyer pays min(cost, hold); any excess goes to the overrun account, so a balance never goes
    negative. Seller earns cost - fee; the fee goes to fee revenue. One balanced transaction.
    """
    settlement_validate(settlement)
    try:
        return _settle_sql(settlement) if fastpath_enabled() else settle_orm(settlement)
    except (IntegrityError, AlreadyDone):
        # Lost the race for the unique request_id to a concurrent settlement of the same request.
        record = UsageRecord.objects.filter(request_id=settlement.request_id).first()
        if record is None:
            raise
        return result_from_record(record, already_settled=True)


def _settle_sql(s: Settlement) -> SettleResult:
    return settle_result(s, request_settle_sql(s))


def settle_result(s: Settlement, row: tuple) -> SettleResult:
    """The fast path's row as a result (or the refusal it reports)."""
    status, cost, _debit, overrun, seller_credit, fee, fee_profile_id, _bps = row
    if status == "wrong_buyer":
        raise BillingError(f"Request {s.request_id} is held for another buyer.")
    if overrun and status == "settled":
        overrun_report(request_id=s.request_id, overrun_nusd=overrun)
    return SettleResult(
        cost_nusd=cost,
        seller_credit_nusd=seller_credit,
        fee_nusd=fee,
        fee_profile_id=fee_profile_id,
        already_settled=status == "already_settled",
    )


def request_refund(*, request_id: str, reason: str, staff_user_id: int) -> LedgerTransaction:
    """Operators: refund a settled request in full: buyer credited, seller clawed back, fee and
    overrun reversed. Once per request. The seller's earnings may go negative (a clawback)."""
    check_request_id(request_id)
    if not reason.strip():
        raise BillingError("A refund needs a reason.")
    operator_check(staff_user_id=staff_user_id, permission=REFUND_REQUEST)
    return _refund(request_id=request_id, reason=reason, created_by_id=staff_user_id)


def request_refund_unproven(*, request_id: str, reason: str) -> LedgerTransaction:
    """The market, with no operator: the same refund of a request served by a listing that was
    suspended for failing its authenticity probes (Trading Terms v3, docs/health.md)."""
    check_request_id(request_id)
    return _refund(request_id=request_id, reason=reason, created_by_id=None)


def _refund(*, request_id: str, reason: str, created_by_id: int | None) -> LedgerTransaction:
    with transaction.atomic():
        record = UsageRecord.objects.select_for_update().filter(request_id=request_id).first()
        if record is None:
            raise NotFound(f"No settled request {request_id}.")
        if record.refunded_at is not None:
            raise AlreadyDone(f"Request {request_id} was already refunded.")
        if record.cost_nusd == 0:
            raise InvalidState(f"Request {request_id} cost nothing; there is nothing to refund.")
        wallet = account_for_user(user_id=record.buyer_id, kind=AccountKind.WALLET)
        txn = ledger_post(
            kind=TransactionKind.REFUND,
            idempotency_key=f"refund:{request_id}",
            request_id=request_id,
            memo=reason,
            created_by_id=created_by_id,
            lines=[
                (wallet, record.buyer_debit_nusd),
                (account_platform(kind=AccountKind.OVERRUN), record.overrun_nusd),
                (
                    account_for_user(user_id=record.seller_id, kind=AccountKind.EARNINGS),
                    -record.seller_credit_nusd,
                ),
                (account_platform(kind=AccountKind.FEE_REVENUE), -record.fee_nusd),
            ],
        )
        LedgerAccount.objects.filter(pk=wallet.pk).update(
            spent_nusd=F("spent_nusd") - record.buyer_debit_nusd
        )
        record.refunded_at = timezone.now()
        record.save(update_fields=["refunded_at"])
    return txn
