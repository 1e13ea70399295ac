"""The event loop's money path (billing.services.fastpath_async): the same functions as the sync
fast path over pooled async connections, committed to PostgreSQL and raced on one loop."""

import asyncio

import pytest
from django.db import connection

from billing import selectors
from billing.checks import ledger_violations
from billing.errors import BillingError, InsufficientBalance, InvalidAmount
from billing.models import Hold, UsageRecord
from billing.money import usd_to_nusd
from billing.services import fastpath_async
from tests.accounts.factories import user_make
from tests.billing.factories import settlement_make

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _postgresql_only():
    if connection.vendor != "postgresql":
        pytest.skip("the async fast path needs PostgreSQL")


def _run(*coros):
    """Run the coroutines concurrently on a fresh loop; exceptions come back as values."""

    async def main():
        try:
            return await asyncio.gather(*coros, return_exceptions=True)
        finally:
            await fastpath_async.pools_close()

    return asyncio.run(main())


def test_hold_then_settle_charges_exactly_like_the_sync_path(market):
    buyer, seller, listing = market
    _run(fastpath_async.hold_place(request_id="a-1", user_id=buyer.pk, amount_nusd=10_000_000))
    assert Hold.objects.get(request_id="a-1").status == "active"

    s = settlement_make(buyer=buyer, seller=seller, listing=listing, request_id="a-1")
    (result,) = _run(fastpath_async.request_settle(settlement=s))
    # 1000 x $0.27/M + 500 x $1.10/M = $0.00082, 10% fee
    assert (result.cost_nusd, result.seller_credit_nusd, result.fee_nusd) == (
        820_000,
        738_000,
        82_000,
    )
    assert not result.already_settled
    assert selectors.wallet_summary(user=buyer)["balance_nusd"] == usd_to_nusd("1") - 820_000
    assert Hold.objects.get(request_id="a-1").status == "settled"
    assert ledger_violations() == []

    (again,) = _run(fastpath_async.request_settle(settlement=s))
    assert again.already_settled and again.cost_nusd == 820_000
    assert UsageRecord.objects.filter(request_id="a-1").count() == 1


def test_concurrent_holds_on_one_loop_never_overdraw(market, settings):
    buyer, _, _ = market
    settings.DRAGONFLY_GATEWAY_DB_POOL_SIZE = 6
    results = _run(
        *(
            fastpath_async.hold_place(
                request_id=f"race-{i}", user_id=buyer.pk, amount_nusd=usd_to_nusd("0.03")
            )
            for i in range(100)
        )
    )
    admitted = [r for r in results if r is None]
    refused = [r for r in results if isinstance(r, InsufficientBalance)]
    assert (len(admitted), len(refused)) == (33, 67)  # 33 x $0.03 <= $1 < 34 x $0.03
    wallet = selectors.wallet_summary(user=buyer)
    assert wallet["held_nusd"] == 33 * usd_to_nusd("0.03")
    assert Hold.objects.filter(user=buyer, status="active").count() == 33


def test_concurrent_settlements_of_one_request_charge_once(market):
    buyer, seller, listing = market
    _run(fastpath_async.hold_place(request_id="once", user_id=buyer.pk, amount_nusd=5_000_000))
    s = settlement_make(buyer=buyer, seller=seller, listing=listing, request_id="once")
    results = _run(*(fastpath_async.request_settle(settlement=s) for _ in range(12)))
    assert sorted(r.already_settled for r in results) == [False] + [True] * 11
    assert UsageRecord.objects.filter(request_id="once").count() == 1
    assert selectors.wallet_summary(user=buyer)["balance_nusd"] == usd_to_nusd("1") - 820_000
    assert ledger_violations() == []


def test_void_releases_the_hold(market):
    buyer, _, _ = market
    _run(fastpath_async.hold_place(request_id="v-1", user_id=buyer.pk, amount_nusd=7_000_000))
    _run(fastpath_async.hold_void(request_id="v-1", reason="no listing served"))
    hold = Hold.objects.get(request_id="v-1")
    assert (hold.status, hold.void_reason) == ("voided", "no listing served")
    assert selectors.wallet_summary(user=buyer)["held_nusd"] == 0


def test_refusals_and_bad_input_write_nothing(market):
    buyer, seller, listing = market
    broke = user_make(verified=None)
    results = _run(
        fastpath_async.hold_place(request_id="big", user_id=buyer.pk, amount_nusd=usd_to_nusd("2")),
        fastpath_async.hold_place(request_id="none", user_id=broke.pk, amount_nusd=1),
        fastpath_async.hold_place(request_id="neg", user_id=buyer.pk, amount_nusd=-5),
        fastpath_async.hold_place(request_id="", user_id=buyer.pk, amount_nusd=5),
        fastpath_async.request_settle(
            settlement=settlement_make(
                buyer=buyer, seller=seller, listing=listing, request_id="bad", outcome="nope"
            )
        ),
    )
    assert [type(r) for r in results] == [
        InsufficientBalance,
        InsufficientBalance,
        InvalidAmount,
        BillingError,
        BillingError,
    ]
    assert not Hold.objects.exists()
    assert not UsageRecord.objects.exists()
    assert ledger_violations() == []
