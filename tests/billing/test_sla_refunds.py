"""SLA refunds in billing: a request admitted under a hard time-to-first-token promise that its
listing broke costs nothing, in the settlement itself (no second ledger pass), with the waived
cost on the usage record; a kept promise is charged as usual. Both implementations, the event
loop's batches, and the database's refusal of a waiver that charges anyway (real commits)."""

import asyncio
import csv
import io
from datetime import timedelta

import pytest
from django.db import IntegrityError, connection
from django.test import Client
from django.utils import timezone

from billing import selectors, services
from billing.checks import ledger_violations
from billing.models import Hold, LedgerTransaction, UsageRecord
from billing.money import NUSD_PER_USD
from billing.pricing import price, sla_breached
from billing.services import fastpath_async
from tests.billing.factories import settlement_make
from tests.market.factories import listing_row_make, seller_make

pytestmark = pytest.mark.django_db(transaction=True)


def _csv(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(b"".join(response).decode())))


COST = 820_000  # settlement_make's 1,000 in at $0.27/M + 500 out at $1.10/M


@pytest.mark.parametrize(
    ("promise", "ttft", "duration", "breached"),
    [
        (None, 9_000, 9_500, False),  # no promise, nothing to break
        (1_000, 1_000, 4_000, False),  # on the promise is within it
        (1_000, 1_001, 4_000, True),
        (1_000, None, 1_500, True),  # no first token, and waited past the promise
        (1_000, None, 800, False),  # no first token, gave up within the promise
        (1_000, None, None, False),
    ],
)
def test_the_breach_rule(promise, ttft, duration, breached):
    assert sla_breached(sla_max_ttft_ms=promise, ttft_ms=ttft, duration_ms=duration) is breached


def test_a_breach_waives_the_whole_cost_and_nobody_pays_or_earns():
    figures = price(
        outcome="completed",
        input_units=1_000,
        output_units=500,
        ask_input_nusd=270_000_000,
        ask_output_nusd=1_100_000_000,
        fee_bps=1_000,
        coverable_nusd=10**12,
        sla_breached=True,
    )
    assert (figures.cost_nusd, figures.fee_nusd, figures.seller_credit_nusd) == (0, 0, 0)
    assert (figures.buyer_debit_nusd, figures.overrun_nusd, figures.sla_waived_nusd) == (0, 0, COST)
    assert figures.sla_breached


def _wallet(user) -> tuple[int, int]:
    summary = selectors.wallet_summary(user=user)
    return summary["balance_nusd"], summary["held_nusd"]


def _settle(market, request_id: str, *, ttft_ms: int, promise: int | None = 1_000, hold=True):
    """Settle one request of the market's buyer at its listing (after a $0.05 hold)."""
    buyer, seller, listing = market
    if hold:
        services.hold_place(request_id=request_id, user_id=buyer.pk, amount_nusd=50_000_000)
    return services.request_settle(
        settlement=settlement_make(
            buyer=buyer,
            seller=seller,
            listing=listing,
            request_id=request_id,
            ttft_ms=ttft_ms,
            sla_max_ttft_ms=promise,
        )
    )


def _earnings(seller) -> int:
    return selectors.earnings_summary(seller=seller)["lifetime_earned_nusd"]


@pytest.mark.usefixtures("billing_impl")
def test_a_broken_promise_settles_free_releases_the_hold_and_keeps_the_waiver(market):
    buyer, seller, _ = market
    result = _settle(market, "r1", ttft_ms=1_800)
    assert (result.cost_nusd, result.seller_credit_nusd, result.fee_nusd) == (0, 0, 0)
    assert _wallet(buyer) == (NUSD_PER_USD, 0)
    assert Hold.objects.get(request_id="r1").status == "settled"
    record = UsageRecord.objects.get(request_id="r1")
    assert (record.sla_max_ttft_ms, record.sla_waived_nusd, record.ttft_ms) == (1_000, COST, 1_800)
    assert record.sla_breached
    assert record.transaction_id is None
    assert not LedgerTransaction.objects.filter(kind="settlement").exists()
    assert _earnings(seller) == 0
    assert ledger_violations() == []


@pytest.mark.usefixtures("billing_impl")
def test_a_kept_promise_is_charged_as_usual_and_remembered(market):
    buyer, seller, _ = market
    assert _settle(market, "r1", ttft_ms=900).cost_nusd == COST
    record = UsageRecord.objects.get(request_id="r1")
    assert (record.sla_max_ttft_ms, record.sla_waived_nusd, record.cost_nusd) == (1_000, 0, COST)
    assert not record.sla_breached
    assert _wallet(buyer) == (NUSD_PER_USD - COST, 0)
    assert _earnings(seller) == record.seller_credit_nusd > 0
    assert ledger_violations() == []


def test_the_event_loops_batch_waives_one_and_charges_the_other(market):
    if connection.vendor != "postgresql":
        pytest.skip("the async fast path needs PostgreSQL")
    buyer, seller, listing = market

    async def both():
        try:
            for rid in ("late", "kept"):
                await fastpath_async.hold_place(request_id=rid, user_id=buyer.pk, amount_nusd=10**7)
            return await asyncio.gather(
                *(
                    fastpath_async.request_settle(
                        settlement=settlement_make(
                            buyer=buyer,
                            seller=seller,
                            listing=listing,
                            request_id=rid,
                            ttft_ms=ttft,
                            sla_max_ttft_ms=500,
                        )
                    )
                    for rid, ttft in (("late", 501), ("kept", 499))
                )
            )
        finally:
            await fastpath_async.pools_close()

    late, kept = asyncio.run(both())
    assert (late.cost_nusd, kept.cost_nusd) == (0, COST)
    waived = dict(UsageRecord.objects.values_list("request_id", "sla_waived_nusd"))
    assert waived == {"late": COST, "kept": 0}
    assert _wallet(buyer) == (NUSD_PER_USD - COST, 0)
    assert ledger_violations() == []


def test_the_database_refuses_a_waiver_beside_a_charge(market):
    if connection.vendor != "postgresql":
        pytest.skip("the SQL function's own check")
    buyer, seller, listing = market
    with pytest.raises(Exception, match="Not a price"), connection.cursor() as cursor:
        cursor.execute(
            "SELECT * FROM df_settle_apply('x', %s, NULL, %s, %s, 'm', 'm', 'token', 1, 1, 1, 1,"
            " 1, 1, false, 'completed', NULL, 1000, NULL, 5, 0, NULL, 0, true, 7, 1000)",
            [buyer.pk, listing.pk, seller.pk],
        )
    with pytest.raises(IntegrityError):
        UsageRecord.objects.create(
            request_id="y",
            buyer=buyer,
            seller=seller,
            listing=listing,
            model_id="m",
            ask_input_nusd=1,
            ask_output_nusd=1,
            input_units=1,
            output_units=1,
            cost_nusd=5,
            buyer_debit_nusd=5,
            overrun_nusd=0,
            seller_credit_nusd=5,
            fee_nusd=0,
            fee_bps=0,
            outcome="completed",
            sla_max_ttft_ms=1000,
            sla_breached=True,
            sla_waived_nusd=7,
        )


def test_the_sellers_statement_shows_late_requests_per_listing_and_what_they_did_not_pay(market):
    _, seller, _ = market
    _settle(market, "late", ttft_ms=1_500, hold=False)
    _settle(market, "kept", ttft_ms=400, hold=False)
    _settle(market, "free", ttft_ms=300, promise=None, hold=False)
    client = Client()
    client.force_login(seller)
    page = client.get("/billing/earnings/").content.decode()
    assert "SLA late / promised" in page and "1 / 2" in page and "$0.00082" in page
    listings = _csv(client.get("/billing/earnings/?format=listings"))
    assert listings[0][-3:] == ["sla_promised", "sla_breached", "sla_waived_usd"]
    assert listings[1][-3:] == ["2", "1", "0.00082"]
    sales = {row[1]: row for row in _csv(client.get("/billing/earnings/?format=csv"))}
    assert sales["request_id"][-3:] == ["sla_max_ttft_ms", "sla_breached", "sla_waived_usd"]
    assert sales["late"][-3:] == ["1000", "True", "0.00082"] and sales["late"][10] == "0"
    assert sales["kept"][-3:] == ["1000", "False", "0"]
    assert sales["free"][-3:] == ["", "False", "0"]


def test_the_seller_portal_shows_each_listings_late_share_of_the_last_seven_days(market):
    buyer, _, _ = market
    seller = seller_make()
    listing = listing_row_make(seller=seller)
    for n, ttft in enumerate((1_500, 1_200, 300, 200)):
        services.request_settle(
            settlement=settlement_make(
                buyer=buyer,
                seller=seller,
                listing=listing,
                request_id=f"r{n}",
                ttft_ms=ttft,
                sla_max_ttft_ms=1_000,
            )
        )
    UsageRecord.objects.filter(request_id="r0").update(
        created_at=timezone.now() - timedelta(days=8)
    )  # outside the window
    client = Client()
    client.force_login(seller)
    assert selectors.sla_by_listing(listing_ids=[listing.pk]) == {
        listing.pk: {"promised": 3, "breached": 1}
    }
    for url in ("/seller/", f"/seller/listings/{listing.pk}/"):
        page = client.get(url).content.decode()
        assert "1 of 3" in page, url
