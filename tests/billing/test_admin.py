"""The admin: ledger rows read-only; refunds and wallet adjustments through the services, with
the operator's reason and the acting staff user on the ledger transaction."""

import pytest
from django.test import Client

from billing import selectors, services
from billing.models import LedgerAccount, LedgerEntry, LedgerTransaction, UsageRecord
from tests.accounts.factories import user_make
from tests.billing.factories import settlement_make
from tests.operators import operator_client

pytestmark = pytest.mark.django_db(transaction=True)
USD = 1_000_000_000
CHANGELIST = "/admin/billing/usagerecord/"


@pytest.fixture
def operator():
    staff = user_make(is_staff=True, is_superuser=True, verified=None)
    return staff, operator_client(staff)


@pytest.fixture
def settled(market):
    buyer, seller, listing = market
    services.hold_place(request_id="req-1", user_id=buyer.pk, amount_nusd=10_000_000)
    services.request_settle(
        settlement=settlement_make(buyer=buyer, seller=seller, listing=listing, request_id="req-1")
    )
    return buyer, seller, UsageRecord.objects.get(request_id="req-1")


def _state():
    return (
        LedgerEntry.objects.count(),
        list(LedgerTransaction.objects.values_list("kind", flat=True).order_by("id")),
        list(LedgerAccount.objects.values_list("balance_nusd", "held_nusd").order_by("id")),
    )


def test_refund_action_asks_for_a_reason_first(settled, operator):
    _, client = operator
    _, _, record = settled
    before = _state()
    page = client.post(CHANGELIST, {"action": "refund_requests", "_selected_action": [record.pk]})
    assert page.status_code == 200
    assert "req-1" in page.content.decode() and 'name="reason"' in page.content.decode()
    blank = client.post(
        CHANGELIST,
        {"action": "refund_requests", "_selected_action": [record.pk], "apply": "1", "reason": " "},
    )
    assert blank.status_code == 200
    assert "A refund needs a reason." in blank.content.decode()
    assert _state() == before


def test_refund_action_refunds_with_the_reason_and_the_staff_user(settled, operator):
    staff, client = operator
    buyer, seller, record = settled
    response = client.post(
        CHANGELIST,
        {
            "action": "refund_requests",
            "_selected_action": [record.pk],
            "apply": "1",
            "reason": "answer was cut off",
        },
    )
    assert response.status_code == 302
    txn = LedgerTransaction.objects.get(kind="refund")
    assert (txn.request_id, txn.memo, txn.created_by_id) == (
        "req-1",
        "answer was cut off",
        staff.pk,
    )
    assert selectors.wallet_summary(user=buyer)["balance_nusd"] == USD
    assert selectors.earnings_summary(seller=seller)["available_nusd"] == 0
    # A second refund of the same request is refused and changes nothing.
    before = _state()
    client.post(
        CHANGELIST,
        {"action": "refund_requests", "_selected_action": [record.pk], "apply": "1", "reason": "x"},
    )
    assert _state() == before


def _adjust_url(user) -> str:
    wallet = LedgerAccount.objects.get(user=user, kind="wallet")
    return f"/admin/billing/ledgeraccount/{wallet.pk}/adjust/"


def test_wallet_adjustment_credits_and_debits_with_reason_and_staff_user(market, operator):
    staff, client = operator
    buyer, _, _ = market
    assert "Adjust…" in client.get("/admin/billing/ledgeraccount/").content.decode()
    response = client.post(_adjust_url(buyer), {"amount_usd": "-0.25", "reason": "duplicate"})
    assert response.status_code == 302
    response = client.post(_adjust_url(buyer), {"amount_usd": "2", "reason": "goodwill"})
    assert response.status_code == 302
    assert selectors.wallet_summary(user=buyer)["balance_nusd"] == 2_750_000_000
    assert list(
        LedgerTransaction.objects.filter(kind="adjustment")
        .order_by("id")
        .values_list("memo", "created_by_id")
    ) == [("duplicate", staff.pk), ("goodwill", staff.pk)]


@pytest.mark.parametrize(
    ("amount", "reason", "message"),
    [
        ("0", "x", "An adjustment cannot be zero."),
        ("NaN", "x", "Amounts must be finite numbers."),
        ("abc", "x", "is not a dollar amount."),
        ("1e12", "x", "That amount is too large."),
        ("20000", "x", "One grant or adjustment moves at most $10,000."),
        ("-1.5", "x", "The balance does not cover this amount."),
        ("1", "   ", "An adjustment needs a reason."),
    ],
)
def test_wallet_adjustment_refuses_bad_input_and_changes_nothing(
    market, operator, amount, reason, message
):
    _, client = operator
    buyer, _, _ = market
    before = _state()
    response = client.post(_adjust_url(buyer), {"amount_usd": amount, "reason": reason})
    assert response.status_code == 200
    html = response.content.decode()
    assert message in html.replace("&#x27;", "'")
    assert _state() == before


def test_only_wallets_can_be_adjusted(market, operator):
    _, client = operator
    _, seller, _ = market
    earnings = LedgerAccount.objects.create(kind="earnings", user=seller)
    assert client.get(f"/admin/billing/ledgeraccount/{earnings.pk}/adjust/").status_code == 404


def test_ledger_rows_are_read_only_in_the_admin(settled, operator):
    _, client = operator
    entry = LedgerEntry.objects.first()
    before = _state()
    assert client.get("/admin/billing/ledgerentry/add/").status_code == 403
    change = client.get(f"/admin/billing/ledgerentry/{entry.pk}/change/")
    assert change.status_code == 200 and 'name="_save"' not in change.content.decode()
    assert (
        client.post(f"/admin/billing/ledgerentry/{entry.pk}/delete/", {"post": "yes"}).status_code
        == 403
    )
    assert _state() == before


def test_non_staff_cannot_reach_the_adjustment_page(market):
    buyer, _, _ = market
    client = Client()
    client.force_login(buyer)
    before = _state()
    response = client.post(_adjust_url(buyer), {"amount_usd": "5", "reason": "me"})
    assert response.status_code == 403 and "Not an operator account" in response.content.decode()
    assert _state() == before
