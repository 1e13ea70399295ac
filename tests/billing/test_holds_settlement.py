"""Holds and settlement: atomic reservation, exactly-once settlement, the partial-stream policy."""

import threading
import time

import pytest
from django.db import connection
from django.test.utils import override_settings

from billing import selectors, services
from billing.checks import ledger_violations
from billing.errors import BillingError, InsufficientBalance, InvalidAmount
from billing.models import Hold, LedgerEntry, LedgerTransaction, UsageRecord
from billing.money import NUSD_PER_USD
from tests.billing.factories import settlement_make

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("billing_impl")]

USD = NUSD_PER_USD


def _wallet(user):
    s = selectors.wallet_summary(user=user)
    return s["balance_nusd"], s["held_nusd"]


def test_hold_reserves_funds_and_refuses_beyond_available(market):
    buyer, _, _ = market
    services.hold_place(request_id="r1", user_id=buyer.pk, amount_nusd=600_000_000)
    assert _wallet(buyer) == (USD, 600_000_000)
    with pytest.raises(InsufficientBalance):
        services.hold_place(request_id="r2", user_id=buyer.pk, amount_nusd=400_000_001)
    assert _wallet(buyer) == (USD, 600_000_000)
    assert not Hold.objects.filter(request_id="r2").exists()
    services.hold_place(request_id="r3", user_id=buyer.pk, amount_nusd=400_000_000)
    assert _wallet(buyer) == (USD, USD)


def test_hold_is_idempotent_on_request_id(market):
    buyer, _, _ = market
    services.hold_place(request_id="r1", user_id=buyer.pk, amount_nusd=300_000_000)
    services.hold_place(request_id="r1", user_id=buyer.pk, amount_nusd=300_000_000)
    assert _wallet(buyer) == (USD, 300_000_000)
    assert Hold.objects.count() == 1


@pytest.mark.parametrize("amount", [0, -1, 10**30, True, 1.5, "5"])
def test_hold_refuses_bad_amounts_and_changes_nothing(market, amount):
    buyer, _, _ = market
    with pytest.raises(InvalidAmount):
        services.hold_place(request_id="bad", user_id=buyer.pk, amount_nusd=amount)
    assert _wallet(buyer) == (USD, 0)
    assert Hold.objects.count() == 0


def test_hold_without_wallet_is_refused():
    from tests.accounts.factories import user_make

    user = user_make(verified=None)
    with pytest.raises(InsufficientBalance):
        services.hold_place(request_id="r", user_id=user.pk, amount_nusd=1)
    assert Hold.objects.count() == 0


def test_settle_charges_asks_and_splits_fee_exactly(market):
    buyer, seller, listing = market
    services.hold_place(request_id="r1", user_id=buyer.pk, amount_nusd=10_000_000)
    result = services.request_settle(
        settlement=settlement_make(buyer=buyer, seller=seller, listing=listing, request_id="r1")
    )
    # 1000 * 0.27 $/M + 500 * 1.10 $/M = 270_000 + 550_000 nano-USD
    assert result.cost_nusd == 820_000
    assert result.fee_nusd == 82_000
    assert result.seller_credit_nusd == 738_000
    assert result.already_settled is False
    assert _wallet(buyer) == (USD - 820_000, 0)
    assert selectors.earnings_summary(seller=seller)["available_nusd"] == 738_000
    record = UsageRecord.objects.get(request_id="r1")
    assert (record.buyer_debit_nusd, record.overrun_nusd, record.fee_bps) == (820_000, 0, 1000)
    assert Hold.objects.get(request_id="r1").status == "settled"
    assert ledger_violations() == []


def test_settle_twice_settles_once(market):
    buyer, seller, listing = market
    services.hold_place(request_id="r1", user_id=buyer.pk, amount_nusd=10_000_000)
    s = settlement_make(buyer=buyer, seller=seller, listing=listing, request_id="r1")
    first = services.request_settle(settlement=s)
    second = services.request_settle(settlement=s)
    assert second.already_settled is True
    assert (second.cost_nusd, second.fee_nusd) == (first.cost_nusd, first.fee_nusd)
    assert _wallet(buyer) == (USD - 820_000, 0)
    assert UsageRecord.objects.count() == 1
    assert LedgerTransaction.objects.filter(kind="settlement").count() == 1


def _settle_in_threads(settlement, n):
    barrier = threading.Barrier(n)
    results, errors = [], []

    def run():
        try:
            barrier.wait()
            results.append(services.request_settle(settlement=settlement))
        except Exception as exc:  # collected and asserted below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, errors


def test_concurrent_settlements_of_one_request_settle_once(market, billing_impl, capsys):
    buyer, seller, listing = market
    services.hold_place(request_id="r1", user_id=buyer.pk, amount_nusd=10_000_000)
    s = settlement_make(buyer=buyer, seller=seller, listing=listing, request_id="r1")
    started = time.perf_counter()
    results, errors = _settle_in_threads(s, 16)
    with capsys.disabled():
        print(
            f"\n[settle concurrency, {billing_impl}] 16 threads settling one request: "
            f"settled={sum(not r.already_settled for r in results)} "
            f"already_settled={sum(r.already_settled for r in results)} errors={len(errors)} "
            f"elapsed={time.perf_counter() - started:.2f}s"
        )
    assert errors == []
    assert sorted(r.already_settled for r in results) == [False] + [True] * 15
    assert {r.cost_nusd for r in results} == {820_000}
    assert _wallet(buyer) == (USD - 820_000, 0)
    assert LedgerTransaction.objects.filter(kind="settlement").count() == 1
    assert ledger_violations() == []


def test_concurrent_settlements_without_a_hold_settle_once(market):
    buyer, seller, listing = market
    s = settlement_make(buyer=buyer, seller=seller, listing=listing, request_id="nohold")
    results, errors = _settle_in_threads(s, 12)
    assert errors == []
    assert sorted(r.already_settled for r in results) == [False] + [True] * 11
    assert _wallet(buyer) == (USD - 820_000, 0)
    assert ledger_violations() == []


def test_cost_above_hold_goes_to_overrun_and_balance_never_negative(market):
    buyer, seller, listing = market
    services.hold_place(request_id="r1", user_id=buyer.pk, amount_nusd=USD)
    s = settlement_make(
        buyer=buyer, seller=seller, listing=listing, request_id="r1", output_units=2_000_000
    )
    result = services.request_settle(settlement=s)
    assert result.cost_nusd == 270_000 + 2_200_000_000
    record = UsageRecord.objects.get(request_id="r1")
    assert record.buyer_debit_nusd == USD
    assert record.overrun_nusd == result.cost_nusd - USD
    assert record.seller_credit_nusd + record.fee_nusd == result.cost_nusd
    assert _wallet(buyer) == (0, 0)
    assert ledger_violations() == []


def test_failed_stream_without_content_costs_nothing_and_releases_hold(market):
    buyer, seller, listing = market
    services.hold_place(request_id="r1", user_id=buyer.pk, amount_nusd=50_000_000)
    s = settlement_make(
        buyer=buyer,
        seller=seller,
        listing=listing,
        request_id="r1",
        output_units=0,
        outcome="upstream_failed",
    )
    result = services.request_settle(settlement=s)
    assert (result.cost_nusd, result.seller_credit_nusd, result.fee_nusd) == (0, 0, 0)
    assert _wallet(buyer) == (USD, 0)
    assert UsageRecord.objects.get(request_id="r1").transaction_id is None
    assert LedgerTransaction.objects.filter(kind="settlement").count() == 0


def test_disconnect_after_content_bills_prompt_and_delivered_tokens(market):
    buyer, seller, listing = market
    services.hold_place(request_id="r1", user_id=buyer.pk, amount_nusd=50_000_000)
    s = settlement_make(
        buyer=buyer,
        seller=seller,
        listing=listing,
        request_id="r1",
        output_units=10,
        outcome="client_disconnected",
    )
    assert services.request_settle(settlement=s).cost_nusd == 270_000 + 11_000
    assert _wallet(buyer) == (USD - 281_000, 0)


def test_disconnect_after_the_upstream_accepted_pays_the_prompt_only(market):
    buyer, seller, listing = market
    services.hold_place(request_id="r1", user_id=buyer.pk, amount_nusd=50_000_000)
    s = settlement_make(
        buyer=buyer,
        seller=seller,
        listing=listing,
        request_id="r1",
        output_units=0,
        outcome="client_disconnected",
    )
    assert services.request_settle(settlement=s).cost_nusd == 270_000  # 1,000 prompt tokens
    assert _wallet(buyer) == (USD - 270_000, 0)


def test_an_upstream_failure_before_content_costs_nothing(market):
    buyer, seller, listing = market
    services.hold_place(request_id="r1", user_id=buyer.pk, amount_nusd=50_000_000)
    s = settlement_make(
        buyer=buyer,
        seller=seller,
        listing=listing,
        request_id="r1",
        output_units=0,
        outcome="upstream_failed",
    )
    assert services.request_settle(settlement=s).cost_nusd == 0
    assert _wallet(buyer) == (USD, 0)


def test_completed_embedding_bills_input_only(market):
    buyer, seller, listing = market
    s = settlement_make(
        buyer=buyer,
        seller=seller,
        listing=listing,
        request_id="e1",
        output_units=0,
        ask_output_nusd=0,
        streamed=False,
    )
    services.hold_place(request_id="e1", user_id=buyer.pk, amount_nusd=1_000_000)
    assert services.request_settle(settlement=s).cost_nusd == 270_000


@pytest.mark.parametrize(
    "field,value",
    [
        ("input_units", -1),
        ("output_units", 10**15),
        ("ask_input_nusd", -5),
        ("ask_output_nusd", 10**20),
        ("outcome", "exploded"),
        ("price_unit", "bananas"),
        ("request_id", ""),
        ("input_units", True),
    ],
)
def test_settle_refuses_malformed_settlements_and_changes_nothing(market, field, value):
    buyer, seller, listing = market
    services.hold_place(request_id="r1", user_id=buyer.pk, amount_nusd=50_000_000)
    fields = {"request_id": "r1", field: value}
    s = settlement_make(buyer=buyer, seller=seller, listing=listing, **fields)
    with pytest.raises(BillingError):
        services.request_settle(settlement=s)
    assert _wallet(buyer) == (USD, 50_000_000)
    assert UsageRecord.objects.count() == 0
    assert Hold.objects.get(request_id="r1").status == "active"


def test_void_releases_hold_once_and_settle_after_void_charges_available(market):
    buyer, seller, listing = market
    services.hold_place(request_id="r1", user_id=buyer.pk, amount_nusd=50_000_000)
    services.hold_void(request_id="r1", reason="client went away")
    services.hold_void(request_id="r1", reason="again")
    assert _wallet(buyer) == (USD, 0)
    hold = Hold.objects.get(request_id="r1")
    assert (hold.status, hold.void_reason) == ("voided", "client went away")
    result = services.request_settle(
        settlement=settlement_make(buyer=buyer, seller=seller, listing=listing, request_id="r1")
    )
    assert result.cost_nusd == 820_000
    assert _wallet(buyer) == (USD - 820_000, 0)
    assert ledger_violations() == []


def test_void_of_a_settled_hold_does_nothing(market):
    buyer, seller, listing = market
    services.hold_place(request_id="r1", user_id=buyer.pk, amount_nusd=50_000_000)
    services.request_settle(
        settlement=settlement_make(buyer=buyer, seller=seller, listing=listing, request_id="r1")
    )
    services.hold_void(request_id="r1", reason="late")
    assert _wallet(buyer) == (USD - 820_000, 0)
    assert Hold.objects.get(request_id="r1").status == "settled"


@override_settings(DRAGONFLY_HOLD_TTL_SECONDS=60)
def test_reaper_voids_only_expired_holds(market):
    from datetime import timedelta

    from django.utils import timezone

    from billing.tasks import holds_reap_task

    buyer, _, _ = market
    services.hold_place(request_id="old", user_id=buyer.pk, amount_nusd=100_000_000)
    services.hold_place(request_id="new", user_id=buyer.pk, amount_nusd=200_000_000)
    Hold.objects.filter(request_id="old").update(created_at=timezone.now() - timedelta(seconds=61))
    assert ledger_violations() == [
        "hold old is active since "
        + Hold.objects.get(request_id="old").created_at.strftime("%Y-%m-%d %H:%M:%S")
    ]
    assert holds_reap_task() == 1
    assert Hold.objects.get(request_id="old").status == "voided"
    assert Hold.objects.get(request_id="new").status == "active"
    assert _wallet(buyer) == (USD, 200_000_000)
    assert ledger_violations() == []


def test_settle_from_a_worker_thread_like_the_gateway(market):
    import asyncio

    from asgiref.sync import sync_to_async

    buyer, seller, listing = market
    services.hold_place(request_id="r1", user_id=buyer.pk, amount_nusd=10_000_000)
    s = settlement_make(buyer=buyer, seller=seller, listing=listing, request_id="r1")
    result = asyncio.run(
        sync_to_async(services.request_settle, thread_sensitive=False)(settlement=s)
    )
    assert result.cost_nusd == 820_000
    assert LedgerEntry.objects.filter(transaction__request_id="r1").count() == 3


def test_broken_held_amount_is_refused_by_void_and_settle(market):
    """A wallet holding less than its hold (a broken invariant) fails loudly and writes nothing."""
    from billing.models import LedgerAccount

    buyer, seller, listing = market
    services.hold_place(request_id="r1", user_id=buyer.pk, amount_nusd=50_000_000)
    LedgerAccount.objects.filter(user=buyer, kind="wallet").update(held_nusd=1)
    with pytest.raises(BillingError, match="holds less than hold r1"):
        services.hold_void(request_id="r1", reason="x")
    with pytest.raises(InsufficientBalance):
        services.request_settle(
            settlement=settlement_make(buyer=buyer, seller=seller, listing=listing, request_id="r1")
        )
    assert Hold.objects.get(request_id="r1").status == "active"
    assert UsageRecord.objects.count() == 0
    assert LedgerTransaction.objects.filter(kind="settlement").count() == 0
