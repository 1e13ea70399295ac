"""A wallet's lifetime spend (LedgerAccount.spent_nusd) and a request's route, as both settlement
paths write them: the spend moves with the debit, a refund takes it back, ledger_check verifies it."""

import threading

import pytest
from django.db import connection

from billing import selectors, services
from billing.checks import ledger_violations
from billing.models import LedgerAccount, UsageRecord
from tests.accounts.factories import user_make
from tests.billing.factories import fund, settlement_make

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("billing_impl")]

ROUTE = {
    "model": "gpt-4o",
    "alias_source": "builtin_alias",
    "attempts": [{"listing_id": 7, "outcome": "failed_over", "reason": "upstream_503"}],
}


def _settle(market, request_id: str, **overrides):
    buyer, seller, listing = market
    services.hold_place(request_id=request_id, user_id=buyer.pk, amount_nusd=10_000_000)
    return services.request_settle(
        settlement=settlement_make(
            buyer=buyer, seller=seller, listing=listing, request_id=request_id, **overrides
        )
    )


def test_spend_grows_by_each_debit_and_the_route_is_kept(market):
    buyer, _, _ = market
    _settle(market, "a", route=ROUTE)
    _settle(market, "b", input_units=10, output_units=0)
    debits = [UsageRecord.objects.get(request_id=r).buyer_debit_nusd for r in "ab"]
    assert debits == [820_000, 2_700]  # 1000 x $0.27/M + 500 x $1.10/M; 10 x $0.27/M
    assert selectors.lifetime_spent_nusd(user=buyer) == sum(debits)
    assert UsageRecord.objects.get(request_id="a").route == ROUTE
    assert UsageRecord.objects.get(request_id="b").route is None
    assert ledger_violations() == []


def test_a_second_settlement_of_a_request_adds_nothing(market):
    buyer, _, _ = market
    _settle(market, "a")
    again = services.request_settle(
        settlement=settlement_make(
            buyer=buyer, seller=market[1], listing=market[2], request_id="a", output_units=9_000
        )
    )
    assert again.already_settled
    assert selectors.lifetime_spent_nusd(user=buyer) == 820_000


def test_only_the_debit_counts_not_the_overrun(market):
    """Without a live hold the buyer pays what is available; the overrun is not their spend."""
    seller, listing = market[1], market[2]
    poor = user_make(email="poor@example.com")
    fund(poor, "0.000001")  # 1,000 nano-USD
    services.request_settle(
        settlement=settlement_make(buyer=poor, seller=seller, listing=listing, request_id="p")
    )
    record = UsageRecord.objects.get(request_id="p")
    assert (record.buyer_debit_nusd, record.overrun_nusd) == (1_000, 819_000)
    assert selectors.lifetime_spent_nusd(user=poor) == 1_000
    assert ledger_violations() == []


def test_a_refund_takes_the_spend_back(market):
    buyer, _, _ = market
    staff = user_make(email="ops@example.com", is_staff=True, is_superuser=True, verified=None)
    _settle(market, "a")
    _settle(market, "b")
    services.request_refund(request_id="a", reason="wrong answer", staff_user_id=staff.pk)
    assert selectors.lifetime_spent_nusd(user=buyer) == 820_000
    assert ledger_violations() == []


def test_concurrent_settlements_lose_no_spend(market):
    """Eight threads settle 40 requests of one buyer: the cached spend is their debits' sum."""
    buyer, _, _ = market

    def work(n: int) -> None:
        try:
            for i in range(5):
                _settle(market, f"t{n}-{i}")
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert UsageRecord.objects.count() == 40
    assert selectors.lifetime_spent_nusd(user=buyer) == 40 * 820_000
    assert ledger_violations() == []


def test_ledger_check_reports_a_cached_spend_that_drifted(market):
    buyer, _, _ = market
    _settle(market, "a")
    LedgerAccount.objects.filter(user=buyer, kind="wallet").update(spent_nusd=1)
    (problem,) = ledger_violations()
    assert "caches lifetime spend 1" in problem and "debited 820000" in problem
