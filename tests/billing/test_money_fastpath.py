"""The PostgreSQL fast path (migration 0005): the same arithmetic as billing.money, one statement
per operation, and the same results and rows as the ORM path it replaces on PostgreSQL."""

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext, override_settings

from billing import selectors, services
from billing.checks import ledger_violations
from billing.errors import BillingError, InsufficientBalance
from billing.models import Hold, LedgerAccount, LedgerEntry, UsageRecord
from billing.money import MAX_PRICE_PER_MILLION_NUSD, MAX_UNITS, cost_nusd, fee_nusd
from billing.services import fastpath
from tests.accounts.factories import user_make
from tests.billing.factories import fund, settlement_make
from tests.market.factories import listing_row_make

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _postgresql_only():
    if connection.vendor != "postgresql":
        pytest.skip("the SQL fast path needs PostgreSQL")


def test_the_primitive_books_the_python_price_of_the_largest_request(market):
    # Prices are computed in Python (billing.pricing) and only booked in SQL: the largest request
    # there can be (2e18 nano-USD) passes through PostgreSQL's bigint columns exactly.
    buyer, seller, listing = market
    s = settlement_make(
        buyer=buyer,
        seller=seller,
        listing=listing,
        request_id="huge",
        input_units=MAX_UNITS,
        output_units=MAX_UNITS,
        ask_input_nusd=MAX_PRICE_PER_MILLION_NUSD,
        ask_output_nusd=MAX_PRICE_PER_MILLION_NUSD,
    )
    result = services.request_settle(settlement=s)
    cost = 2 * cost_nusd(units=MAX_UNITS, price_per_million_nusd=MAX_PRICE_PER_MILLION_NUSD)
    assert (result.cost_nusd, result.fee_nusd) == (cost, fee_nusd(cost_nusd=cost, fee_bps=1000))
    record = UsageRecord.objects.get(request_id="huge")
    assert record.overrun_nusd == cost - record.buyer_debit_nusd > 0  # the wallet has $10
    assert ledger_violations() == []


def test_a_fee_changed_since_it_was_last_seen_is_priced_again(market):
    from billing.models import FeeProfile

    buyer, seller, listing = market
    fastpath.fee_learn(seller_id=seller.pk)  # the process knows the seller's fee (10%)
    profile = FeeProfile.objects.create(name="Low", fee_bps=250)
    services.seller_fee_profile_set(
        seller_id=seller.pk, fee_profile=profile, reason="test", staff_user_id=None
    )
    services.hold_place(request_id="r1", user_id=buyer.pk, amount_nusd=10_000_000)
    with CaptureQueriesContext(connection) as settle_q:
        result = services.request_settle(
            settlement=settlement_make(buyer=buyer, seller=seller, listing=listing, request_id="r1")
        )
    # Priced at 10%, refused ('reprice': nothing written), priced again at 2.5%, booked.
    assert len(settle_q) == 2
    assert result.fee_profile_id == profile.pk
    assert result.fee_nusd == fee_nusd(cost_nusd=result.cost_nusd, fee_bps=250)
    record = UsageRecord.objects.get(request_id="r1")
    assert (record.fee_bps, record.fee_nusd) == (250, result.fee_nusd)
    assert ledger_violations() == []


def test_hold_settle_and_void_are_one_statement_each(market):
    buyer, seller, listing = market
    fastpath.fee_learn(seller_id=seller.pk)  # as after the process's first settlement for them
    with CaptureQueriesContext(connection) as hold_q:
        services.hold_place(request_id="r1", user_id=buyer.pk, amount_nusd=10_000_000)
    with CaptureQueriesContext(connection) as settle_q:
        services.request_settle(
            settlement=settlement_make(buyer=buyer, seller=seller, listing=listing, request_id="r1")
        )
    services.hold_place(request_id="r2", user_id=buyer.pk, amount_nusd=10_000_000)
    with CaptureQueriesContext(connection) as void_q:
        services.hold_void(request_id="r2", reason="test")
    with CaptureQueriesContext(connection) as refused_q, pytest.raises(InsufficientBalance):
        services.hold_place(request_id="r3", user_id=buyer.pk, amount_nusd=10**10)
    assert (len(hold_q), len(settle_q), len(void_q), len(refused_q)) == (1, 1, 1, 1)
    assert ledger_violations() == []


def test_refused_hold_inside_a_transaction_leaves_it_usable(market):
    buyer, _, _ = market
    with transaction.atomic():
        with pytest.raises(InsufficientBalance):
            services.hold_place(request_id="big", user_id=buyer.pk, amount_nusd=10**10)
        services.hold_place(request_id="ok", user_id=buyer.pk, amount_nusd=1_000)
    assert list(Hold.objects.values_list("request_id", flat=True)) == ["ok"]
    assert selectors.wallet_summary(user=buyer)["held_nusd"] == 1_000


def test_settle_of_a_hold_for_another_buyer_is_refused_and_writes_nothing(market):
    buyer, seller, listing = market
    other = user_make(verified=None)
    fund(other, "1")
    services.hold_place(request_id="r1", user_id=buyer.pk, amount_nusd=10_000_000)
    with pytest.raises(BillingError, match="held for another buyer"):
        services.request_settle(
            settlement=settlement_make(buyer=other, seller=seller, listing=listing, request_id="r1")
        )
    assert UsageRecord.objects.count() == 0
    assert Hold.objects.get(request_id="r1").status == "active"


def test_settle_creates_missing_accounts_and_the_default_fee_profile(market):
    from billing.models import FeeProfile

    buyer, _, listing = market
    new_seller = user_make(verified=None)  # no earnings account yet
    FeeProfile.objects.filter(is_default=True).delete()
    s = settlement_make(buyer=buyer, seller=new_seller, listing=listing, request_id="r1")
    result = services.request_settle(settlement=s)  # no hold: charges the available balance
    profile = FeeProfile.objects.get(is_default=True)
    assert (result.fee_profile_id, profile.fee_bps) == (profile.pk, 1000)
    assert selectors.earnings_summary(seller=new_seller)["available_nusd"] == 738_000
    assert ledger_violations() == []


SCENARIOS = [  # (hold: held | voided | none, settlement fields)
    ("held", {"request_id": "plain"}),
    ("held", {"request_id": "overrun", "output_units": 2_000_000}),
    ("voided", {"request_id": "nocontent", "output_units": 0, "outcome": "upstream_failed"}),
    ("none", {"request_id": "partial", "output_units": 10, "outcome": "client_disconnected"}),
    ("held", {"request_id": "embed", "output_units": 0, "ask_output_nusd": 0, "streamed": False}),
    ("voided", {"request_id": "nokey", "access_key_id": 7, "ttft_ms": None, "duration_ms": None}),
    ("none", {"request_id": "broke", "output_units": 5_000_000}),  # more than is left: overrun
]


def _run_scenarios(fastpath: bool):
    """The same money story through one implementation; returns every row it wrote."""
    from dataclasses import replace

    prefix = "sql-" if fastpath else "orm-"
    buyer, seller = user_make(verified=None), user_make(verified=None)
    listing = listing_row_make(seller=seller)
    fund(buyer, "3")
    with override_settings(DRAGONFLY_BILLING_SQL_FASTPATH=fastpath):
        for mode, fields in SCENARIOS:
            rid = f"{prefix}{fields['request_id']}"
            if mode != "none":
                services.hold_place(request_id=rid, user_id=buyer.pk, amount_nusd=600_000_000)
            if mode == "voided":
                services.hold_void(request_id=rid, reason="reaped")
            s = settlement_make(buyer=buyer, seller=seller, listing=listing, **fields)
            s = replace(s, request_id=rid)
            if fields["request_id"] == "nokey":
                s = replace(s, listing_id=None)
            assert not services.request_settle(settlement=s).already_settled
            assert services.request_settle(settlement=s).already_settled

    def strip(rid):
        return rid.removeprefix(prefix)

    skip = {"id", "created_at", "buyer_id", "seller_id", "listing_id", "transaction_id"}
    usage = [
        {k: v for k, v in r.items() if k not in skip}
        | {"request_id": strip(r["request_id"]), "has_txn": r["transaction_id"] is not None}
        for r in UsageRecord.objects.filter(buyer=buyer).order_by("id").values()
    ]
    entries = [
        (strip(e.transaction.request_id), e.transaction.kind, e.account.kind, e.amount_nusd)
        for e in LedgerEntry.objects.filter(transaction__request_id__startswith=prefix)
        .select_related("transaction", "account")
        .order_by("id")
    ]
    holds = [
        (strip(rid), status, reason, released is not None)
        for rid, status, reason, released in Hold.objects.filter(user=buyer)
        .order_by("id")
        .values_list("request_id", "status", "void_reason", "released_at")
    ]
    wallet = LedgerAccount.objects.get(user=buyer, kind="wallet")
    earnings = LedgerAccount.objects.get(user=seller, kind="earnings")
    return usage, entries, holds, (wallet.balance_nusd, wallet.held_nusd, earnings.balance_nusd)


def test_fast_path_writes_exactly_what_the_orm_path_writes():
    sql = _run_scenarios(fastpath=True)
    orm = _run_scenarios(fastpath=False)
    assert sql == orm
    assert ledger_violations() == []
