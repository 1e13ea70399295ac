"""Refunds after an authenticity suspension (market/authenticity_refunds.py): exactly what the
listing served with the failed model since that model last passed on it, each once, with the
ledger balanced; other models, other listings, older and free requests are left alone."""

import uuid

import pytest

from billing import selectors, services
from billing.checks import ledger_violations
from billing.models import TransactionKind, UsageRecord
from market import authenticity_refunds
from market.models import AuthenticityCheck, CatalogModel, Verdict
from tests.accounts.factories import user_make
from tests.billing.factories import fund, settlement_make
from tests.market.factories import listing_make

pytestmark = pytest.mark.django_db(transaction=True)
CHAT, REASONER = "deepseek/deepseek-chat", "deepseek/deepseek-reasoner"
COST = 820_000  # settlement_make's 1,000 in at $0.27/M + 500 out at $1.10/M


def _settle(buyer, listing, request_id: str, **overrides) -> None:
    services.hold_place(request_id=request_id, user_id=buyer.pk, amount_nusd=50_000_000)
    services.request_settle(
        settlement=settlement_make(
            buyer=buyer, seller=listing.seller, listing=listing, request_id=request_id, **overrides
        )
    )


def _passed(listing, model: CatalogModel) -> AuthenticityCheck:
    return AuthenticityCheck.objects.create(
        listing=listing, model=model, verdict=Verdict.PASSED, prompt="p", asked_model="m"
    )


def test_what_the_listing_served_with_the_failed_model_since_it_last_passed_is_refunded_once(
    seller, other_seller, sim, catalogue
):
    buyer = user_make()
    fund(buyer, "5")
    chat = catalogue[CHAT]
    listing = listing_make(seller, key=f"sim-{uuid.uuid4().hex[:8]}", models=(CHAT, REASONER))
    other = listing_make(other_seller, key=f"sim-{uuid.uuid4().hex[:8]}")
    _settle(buyer, listing, "req_before_the_pass")
    passed = _passed(listing, chat)
    for request_id in ("req_sub_1", "req_sub_2", "req_sub_3"):
        _settle(buyer, listing, request_id)
    _settle(buyer, listing, "req_reasoner", model_id=REASONER)
    _settle(buyer, other, "req_other_listing")
    _settle(buyer, listing, "req_free", ask_input_nusd=0, ask_output_nusd=0)
    services.request_refund_unproven(request_id="req_sub_3", reason="refunded before (a dispute)")
    balance = selectors.wallet_summary(user=buyer)["balance_nusd"]
    earned = selectors.earnings_summary(seller=seller)["available_nusd"]

    since = authenticity_refunds.unproven_since(listing_id=listing.pk, model_pk=chat.pk)
    assert since == passed.at
    assert (
        authenticity_refunds.refund_unproven(listing_id=listing.pk, model_pk=chat.pk, since=since)
        == 2
    )
    assert (
        authenticity_refunds.refund_unproven(listing_id=listing.pk, model_pk=chat.pk, since=since)
        == 0
    )  # run again: nothing twice

    refunded = UsageRecord.objects.filter(refunded_at__isnull=False)
    assert set(refunded.values_list("request_id", flat=True)) == {
        "req_sub_1",
        "req_sub_2",
        "req_sub_3",
    }
    assert selectors.wallet_summary(user=buyer)["balance_nusd"] == balance + 2 * COST
    credit = UsageRecord.objects.get(request_id="req_sub_1").seller_credit_nusd
    assert selectors.earnings_summary(seller=seller)["available_nusd"] == earned - 2 * credit
    refund = UsageRecord.objects.get(request_id="req_sub_1")
    txn = (
        refund.buyer.ledger_accounts.get(kind="wallet")
        .entries.filter(
            transaction__kind=TransactionKind.REFUND, transaction__request_id="req_sub_1"
        )
        .get()
        .transaction
    )
    assert txn.created_by_id is None and f"Listing #{listing.pk} was suspended" in txn.memo
    assert ledger_violations() == []


def test_a_model_that_never_passed_is_unproven_since_the_listing_was_created(
    seller, sim, catalogue
):
    listing = listing_make(seller, key=f"sim-{uuid.uuid4().hex[:8]}")
    _passed(listing, catalogue[REASONER])  # another model's pass says nothing of this one
    assert (
        authenticity_refunds.unproven_since(listing_id=listing.pk, model_pk=catalogue[CHAT].pk)
        == listing.created_at
    )
