"""Settlement through the ORM: the implementation on SQLite (the embedded default), and on
PostgreSQL when DRAGONFLY_BILLING_SQL_FASTPATH is off. Only the booking is here: the figures are
billing.pricing.price's. The settlement is validated by billing.services.settlement, which also
catches the race for the unique request id."""

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from billing.errors import BillingError
from billing.models import (
    AccountKind,
    Hold,
    HoldStatus,
    LedgerAccount,
    TransactionKind,
    UsageRecord,
)
from billing.pricing import settlement_price
from billing.selectors import fee_profile_for_seller
from billing.services.ledger import account_for_user, account_platform, ledger_post
from billing.services.overruns import overrun_report
from billing.settlement_data import Settlement, SettleResult


def result_from_record(record: UsageRecord, *, already_settled: bool) -> SettleResult:
    return SettleResult(
        cost_nusd=record.cost_nusd,
        seller_credit_nusd=record.seller_credit_nusd,
        fee_nusd=record.fee_nusd,
        fee_profile_id=record.fee_profile_id,
        already_settled=already_settled,
    )


def settle_orm(s: Settlement) -> SettleResult:
    with transaction.atomic():
        # A request's own hold, or the balance lease it drew from (what the lease still covers).
        held_under = s.lease_id or s.request_id
        hold = Hold.objects.select_for_update().filter(request_id=held_under).first()
        existing = UsageRecord.objects.filter(request_id=s.request_id).first()
        if existing is not None:
            return result_from_record(existing, already_settled=True)
        if hold is not None and hold.user_id != s.buyer_id:
            raise BillingError(f"Request {s.request_id} is held for another buyer.")

        fee_profile_id, fee_bps = fee_profile_for_seller(seller_id=s.seller_id)
        wallet = account_for_user(user_id=s.buyer_id, kind=AccountKind.WALLET)

        hold_active = hold is not None and hold.status == HoldStatus.ACTIVE
        if hold_active:
            assert hold is not None
            coverable = hold.amount_nusd
        else:
            # No live hold (never placed, or voided by the reaper): charge what is available now.
            coverable = LedgerAccount.objects.select_for_update().get(pk=wallet.pk).available_nusd
        figures = settlement_price(s, fee_bps=fee_bps, coverable_nusd=coverable)
        cost, fee, seller_credit = figures.cost_nusd, figures.fee_nusd, figures.seller_credit_nusd
        debit, overrun = figures.buyer_debit_nusd, figures.overrun_nusd
        held_delta = 0
        if hold_active:  # its own hold is released whole; a lease by this request's debit
            assert hold is not None
            held_delta = -(debit if s.lease_id else hold.amount_nusd)

        txn = None
        if cost > 0:
            txn = ledger_post(
                kind=TransactionKind.SETTLEMENT,
                idempotency_key=f"settle:{s.request_id}",
                request_id=s.request_id,
                memo=f"{s.model_id} via listing {s.listing_id}",
                lines=[
                    (wallet, -debit),
                    (account_platform(kind=AccountKind.OVERRUN), -overrun),
                    (
                        account_for_user(user_id=s.seller_id, kind=AccountKind.EARNINGS),
                        seller_credit,
                    ),
                    (account_platform(kind=AccountKind.FEE_REVENUE), fee),
                ],
                held_deltas={wallet.pk: held_delta},
            )
        elif held_delta:
            LedgerAccount.objects.filter(pk=wallet.pk).update(held_nusd=F("held_nusd") + held_delta)
        if debit:
            LedgerAccount.objects.filter(pk=wallet.pk).update(spent_nusd=F("spent_nusd") + debit)
        if hold_active:
            assert hold is not None
            _hold_settled(hold, debit, lease=s.lease_id is not None)
        record = UsageRecord.objects.create(
            request_id=s.request_id,
            buyer_id=s.buyer_id,
            access_key_id=s.access_key_id,
            listing_id=s.listing_id,
            seller_id=s.seller_id,
            model_id=s.model_id,
            upstream_model=s.upstream_model,
            price_unit=s.price_unit,
            ask_input_nusd=s.ask_input_nusd,
            ask_output_nusd=s.ask_output_nusd,
            input_units=s.input_units,
            output_units=s.output_units,
            cost_nusd=cost,
            buyer_debit_nusd=debit,
            overrun_nusd=overrun,
            seller_credit_nusd=seller_credit,
            fee_nusd=fee,
            fee_bps=fee_bps,
            fee_profile_id=fee_profile_id,
            ttft_ms=s.ttft_ms,
            duration_ms=s.duration_ms,
            streamed=s.streamed,
            outcome=s.outcome,
            route=s.route,
            sla_max_ttft_ms=s.sla_max_ttft_ms,
            sla_breached=figures.sla_breached,
            sla_waived_nusd=figures.sla_waived_nusd,
            transaction=txn,
        )
    if overrun:
        overrun_report(request_id=s.request_id, overrun_nusd=overrun)
    return result_from_record(record, already_settled=False)


def _hold_settled(hold: Hold, debit_nusd: int, *, lease: bool) -> None:
    """A request's own hold ends settled; a lease covers the debit less, and ends once spent."""
    if lease and debit_nusd < hold.amount_nusd:
        if debit_nusd:
            hold.amount_nusd -= debit_nusd
            hold.save(update_fields=["amount_nusd"])
        return
    hold.status = HoldStatus.SETTLED
    hold.released_at = timezone.now()
    hold.save(update_fields=["status", "released_at"])
