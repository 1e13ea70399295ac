"""The usage detail page shows the buyer the split of their own request (what they paid, what the
seller earned, the platform fee, what their balance could not cover), and each figure is the
ledger's: the entries of that request's settlement, not a figure computed again for the page."""

import re

import pytest
from django.test import Client

from billing import selectors, services
from billing.models import AccountKind, UsageRecord
from billing.money import format_usd
from tests.accounts.factories import user_make
from tests.billing.factories import settlement_make

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("billing_impl")]

REQUEST_ID = "req_5b1175b1175b1175b1175b11"


def _page(user, request_id: str) -> str:
    client = Client()
    client.force_login(user)
    response = client.get(f"/billing/usage/{request_id}/")
    assert response.status_code == 200
    return response.content.decode()


def _cells(html: str) -> dict[str, str]:
    return dict(re.findall(r'<td id="((?:split-|buyer-)[a-z-]+)">([^<]*)</td>', html))


def _ledger(record: UsageRecord) -> dict[str, int]:
    """The settlement's entries by account kind (the buyer's wallet is debited: a negative)."""
    entries = record.transaction.entries.select_related("account")
    return {entry.account.kind: entry.amount_nusd for entry in entries}


def _settle(market, *, hold_nusd: int) -> UsageRecord:
    buyer, seller, listing = market
    services.hold_place(request_id=REQUEST_ID, user_id=buyer.pk, amount_nusd=hold_nusd)
    services.request_settle(
        settlement=settlement_make(
            buyer=buyer,
            seller=seller,
            listing=listing,
            request_id=REQUEST_ID,
            input_units=123_457,
            output_units=6_789,
        )
    )
    return UsageRecord.objects.select_related("transaction").get(request_id=REQUEST_ID)


def test_the_page_shows_the_split_as_the_ledger_booked_it(market):
    record = _settle(market, hold_nusd=100_000_000)
    ledger = _ledger(record)
    assert set(ledger) == {AccountKind.WALLET, AccountKind.EARNINGS, AccountKind.FEE_REVENUE}
    cells = _cells(_page(market[0], REQUEST_ID))
    assert cells == {
        "split-cost": format_usd(record.cost_nusd),
        "buyer-debit": format_usd(-ledger[AccountKind.WALLET]),
        "split-seller": format_usd(ledger[AccountKind.EARNINGS]),
        "split-fee": format_usd(ledger[AccountKind.FEE_REVENUE]),
    }
    # 123,457 x $0.27/M + 6,789 x $1.10/M; the default profile's 10 %, rounded half up
    assert cells["split-cost"] == "$0.04080129"
    assert (cells["split-seller"], cells["split-fee"]) == ("$0.036721161", "$0.004080129")


def test_an_overrun_shows_what_the_balance_could_not_cover(market):
    record = _settle(market, hold_nusd=1_000)  # a hold far below the cost: the overrun path
    ledger = _ledger(record)
    html = _page(market[0], REQUEST_ID)
    cells = _cells(html)
    assert cells["buyer-debit"] == format_usd(-ledger[AccountKind.WALLET]) == "$0.000001"
    assert cells["split-overrun"] == format_usd(-ledger[AccountKind.OVERRUN])
    assert record.overrun_nusd == -ledger[AccountKind.OVERRUN] > 0
    assert cells["split-seller"] == format_usd(ledger[AccountKind.EARNINGS])
    assert cells["split-fee"] == format_usd(ledger[AccountKind.FEE_REVENUE])
    assert "your balance covered $0.000001 of it" in html


def test_the_page_and_the_generation_record_agree(market):
    """/v1/generation answers selectors.usage_generation's record; the page shows the same."""
    record = _settle(market, hold_nusd=100_000_000)
    g = selectors.usage_generation(buyer=market[0], request_id=REQUEST_ID)
    cells = _cells(_page(market[0], REQUEST_ID))
    assert (cells["buyer-debit"], cells["split-seller"], cells["split-fee"]) == (
        format_usd(g["buyer_debit_nusd"]),
        format_usd(g["seller_credit_nusd"]),
        format_usd(g["fee_nusd"]),
    )
    assert g["total_cost"] == record.buyer_debit_nusd / 1e9


def test_a_refunded_request_says_so(market):
    _settle(market, hold_nusd=100_000_000)
    staff = user_make(is_staff=True, is_superuser=True, verified=None)
    services.request_refund(request_id=REQUEST_ID, reason="test", staff_user_id=staff.pk)
    html = _page(market[0], REQUEST_ID)
    assert "This request was refunded" in html
