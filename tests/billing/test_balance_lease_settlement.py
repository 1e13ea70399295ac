"""Settlements against a balance lease (billing migration 0019, gateway/balance_leases.py): one hold
that many requests are debited against. Both money-core implementations, real commits, and one
race of threads on one lease.

The lease's hold is what it still covers: each debit lowers it and the wallet's held amount alike,
the debit that spends it ends it, a cost beyond it is overrun like a cost beyond a request's own
hold, and a lease voided meanwhile (a reaper, a Stripe reversal) leaves the settlement to charge
what is available, as with a request whose own hold was voided."""

import threading
from dataclasses import replace

import pytest
from django.db import connection, connections

from billing import selectors, services
from billing.checks import ledger_violations
from billing.errors import BillingError
from billing.models import AccountKind, Hold, LedgerAccount, UsageRecord
from billing.money import usd_to_nusd
from tests.billing.factories import settlement_make

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("billing_impl")]

LEASE = "req_0000beefleasefeedfacecafebeef"
COST = 820_000  # settlement_make's figures: 1000 x $0.27/M + 500 x $1.10/M
ONE_USD = usd_to_nusd("1")


def _lease(buyer, amount_nusd: int) -> None:
    # A lease is a hold row like any other; only how settlements draw on it differs.
    services.hold_place(request_id=LEASE, user_id=buyer.pk, amount_nusd=amount_nusd)


def _settle(market, request_id: str, **overrides):
    buyer, seller, listing = market
    s = settlement_make(
        buyer=buyer, seller=seller, listing=listing, request_id=request_id, lease_id=LEASE
    )
    return services.request_settle(settlement=replace(s, **overrides))


def _wallet(buyer) -> tuple[int, int]:
    summary = selectors.wallet_summary(user=buyer)
    return summary["balance_nusd"], summary["held_nusd"]


def test_each_settlement_is_debited_against_the_lease_and_lowers_it(market):
    buyer = market[0]
    _lease(buyer, 10 * COST)
    for n in range(3):
        result = _settle(market, f"r-{n}")
        assert (result.cost_nusd, result.already_settled) == (COST, False)
    lease = Hold.objects.get(request_id=LEASE)
    assert (lease.status, lease.amount_nusd) == ("active", 7 * COST)
    assert _wallet(buyer) == (ONE_USD - 3 * COST, 7 * COST)
    records = UsageRecord.objects.filter(buyer=buyer)
    assert sorted(records.values_list("buyer_debit_nusd", "overrun_nusd")) == [(COST, 0)] * 3
    # Exactly once: settling a request again changes nothing, on the lease or the wallet.
    again = _settle(market, "r-1")
    assert again.already_settled and again.cost_nusd == COST
    assert Hold.objects.get(request_id=LEASE).amount_nusd == 7 * COST
    assert _wallet(buyer) == (ONE_USD - 3 * COST, 7 * COST)
    assert ledger_violations() == []


def test_the_debit_that_spends_the_lease_ends_it(market):
    buyer = market[0]
    _lease(buyer, 2 * COST)
    _settle(market, "r-1")
    _settle(market, "r-2")
    lease = Hold.objects.get(request_id=LEASE)
    assert lease.status == "settled" and lease.released_at is not None
    assert _wallet(buyer) == (ONE_USD - 2 * COST, 0)
    assert ledger_violations() == []


def test_a_cost_beyond_what_the_lease_still_covers_is_overrun(market):
    buyer = market[0]
    _lease(buyer, COST + 100_000)
    _settle(market, "r-1")
    big = _settle(market, "r-2")  # costs COST, the lease covers 100,000 of it
    assert big.cost_nusd == COST
    record = UsageRecord.objects.get(request_id="r-2")
    assert (record.buyer_debit_nusd, record.overrun_nusd) == (100_000, COST - 100_000)
    assert Hold.objects.get(request_id=LEASE).status == "settled"
    assert _wallet(buyer) == (ONE_USD - COST - 100_000, 0)
    assert ledger_violations() == []


def test_a_free_request_leaves_the_lease_as_it_was(market):
    buyer = market[0]
    _lease(buyer, 5 * COST)
    result = _settle(market, "free", input_units=0, output_units=0)
    assert result.cost_nusd == 0
    assert Hold.objects.get(request_id=LEASE).amount_nusd == 5 * COST
    assert _wallet(buyer) == (ONE_USD, 5 * COST)


def test_a_voided_lease_leaves_the_settlement_to_charge_what_is_available(market):
    buyer = market[0]
    _lease(buyer, 5 * COST)
    services.hold_void(request_id=LEASE, reason="balance lease ended")
    _settle(market, "late")
    record = UsageRecord.objects.get(request_id="late")
    assert (record.buyer_debit_nusd, record.overrun_nusd) == (COST, 0)
    assert _wallet(buyer) == (ONE_USD - COST, 0)
    assert Hold.objects.get(request_id=LEASE).status == "voided"
    assert ledger_violations() == []


def test_another_buyers_settlement_cannot_draw_on_the_lease(market):
    from tests.accounts.factories import user_make
    from tests.billing.factories import fund

    buyer = market[0]
    other = user_make(verified=None)
    fund(other, "1")
    _lease(buyer, 5 * COST)
    with pytest.raises(BillingError, match="held for another buyer"):
        _settle(market, "theirs", buyer_id=other.pk)
    assert not UsageRecord.objects.filter(request_id="theirs").exists()
    assert Hold.objects.get(request_id=LEASE).amount_nusd == 5 * COST


def test_a_lease_id_that_is_not_a_request_id_is_refused(market):
    with pytest.raises(BillingError, match="request id"):
        _settle(market, "r-1", lease_id=" ")
    with pytest.raises(BillingError, match="request id"):
        _settle(market, "r-1", lease_id="x" * 101)
    assert not UsageRecord.objects.exists()


THREADS = 8
EACH = 12


def test_threads_settling_on_one_lease_at_once_debit_it_exactly(market, billing_impl):
    if billing_impl == "orm" and connection.vendor != "postgresql":
        pytest.skip("SQLite serialises writers: no race to show")
    buyer = market[0]
    _lease(buyer, THREADS * EACH * COST + 1)  # one nano-dollar more: it stays active
    start = threading.Barrier(THREADS)
    failures: list[BaseException] = []

    def settle_some(worker: int) -> None:
        start.wait()
        try:
            for n in range(EACH):
                _settle(market, f"t{worker}-{n}")
                _settle(market, f"t{worker}-{n}")  # and each once more: charged once
        except BaseException as exc:  # reported below
            failures.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=settle_some, args=(w,)) for w in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)

    assert failures == []
    assert UsageRecord.objects.filter(buyer=buyer).count() == THREADS * EACH
    lease = Hold.objects.get(request_id=LEASE)
    assert (lease.status, lease.amount_nusd) == ("active", 1)
    wallet = LedgerAccount.objects.get(user=buyer, kind=AccountKind.WALLET)
    assert (wallet.balance_nusd, wallet.held_nusd) == (ONE_USD - THREADS * EACH * COST, 1)
    assert ledger_violations() == []
