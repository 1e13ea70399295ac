"""Disputes on the dashboard and in the admin: the usage page's form (offered only when the request
may be disputed; refusals shown with their status, nothing changed), the buyer's Disputes page,
the seller's view (no buyer), and the operators' queue and decision page (approve, reject, a
double submission, permissions)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone

from billing import selectors, services
from billing.models import Dispute, LedgerTransaction, TransactionKind, UsageRecord
from tests.accounts.factories import user_make
from tests.billing.factories import fund, settlement_make
from tests.market.factories import listing_row_make, seller_make
from tests.operators import operator_client

pytestmark = pytest.mark.django_db(transaction=True)

PAGE = "/billing/usage/req_a/"
FORM = "/billing/usage/req_a/dispute/"


def _settle(market, request_id: str = "req_a") -> UsageRecord:
    buyer, seller, listing = market
    services.hold_place(request_id=request_id, user_id=buyer.pk, amount_nusd=50_000_000)
    services.request_settle(
        settlement=settlement_make(
            buyer=buyer, seller=seller, listing=listing, request_id=request_id
        )
    )
    return UsageRecord.objects.get(request_id=request_id)


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def staff():
    return user_make(is_staff=True, is_superuser=True, verified=None)


def test_the_usage_page_offers_the_form_and_opening_shows_the_state(market):
    _settle(market)
    client = _client(market[0])
    html = client.get(PAGE).content.decode()
    assert 'id="dispute-form"' in html and 'value="wrong_model"' in html
    response = client.post(FORM, {"reason": "too_slow", "detail": "Took a minute."})
    assert (response.status_code, response["Location"]) == (302, PAGE)
    html = client.get(PAGE).content.decode()
    assert 'id="dispute-form"' not in html
    assert "open: awaiting an operator" in html and "Took a minute." in html
    assert Dispute.objects.get().reason == "too_slow"


def test_a_refused_dispute_shows_why_and_changes_nothing(market, staff):
    _settle(market)
    client = _client(market[0])
    services.request_refund(request_id="req_a", reason="ticket", staff_user_id=staff.pk)
    page = client.get(PAGE).content.decode()
    assert 'id="dispute-form"' not in page and "was already refunded" in page
    response = client.post(FORM, {"reason": "other"})
    assert response.status_code == 409
    assert "was already refunded" in response.content.decode()
    assert not Dispute.objects.exists()


def test_an_old_request_offers_no_form(market):
    _settle(market)
    UsageRecord.objects.update(created_at=timezone.now() - timedelta(days=8))
    page = _client(market[0]).get(PAGE).content.decode()
    assert 'id="dispute-form"' not in page and "more than 7 days ago" in page


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"reason": "nope"},
        {"reason": "other", "detail": "x" * 1001},
        {"reason": ["other", "wrong_model"], "detail": "\x00"},
    ],
)
def test_garbage_in_the_form_is_a_400_with_the_form_again(market, data):
    _settle(market)
    response = _client(market[0]).post(FORM, data)
    assert response.status_code == 400
    assert 'id="dispute-form"' in response.content.decode()
    assert not Dispute.objects.exists()


def test_another_buyers_request_is_a_404(market):
    _settle(market)
    assert _client(user_make(verified=None)).post(FORM, {"reason": "other"}).status_code == 404
    assert not Dispute.objects.exists()


def test_the_disputes_page_lists_the_buyers_own_with_the_outcome(market, staff):
    _settle(market)
    dispute = services.dispute_open(buyer=market[0], request_id="req_a", reason="other")
    services.dispute_reject(dispute_id=dispute.pk, staff_user_id=staff.pk, note="It was fine.")
    html = _client(market[0]).get("/billing/disputes/").content.decode()
    assert "req_a" in html and "rejected" in html and "It was fine." in html
    assert (
        "req_a" not in _client(user_make(verified=None)).get("/billing/disputes/").content.decode()
    )


def test_the_seller_sees_the_dispute_and_its_outcome_but_not_the_buyer(staff):
    buyer, seller = user_make(verified=None), seller_make()
    fund(buyer, "1")
    market = (buyer, seller, listing_row_make(seller=seller))
    _settle(market)
    dispute = services.dispute_open(
        buyer=buyer, request_id="req_a", reason="wrong_model", detail=f"write to {buyer.email}"
    )
    seller_client = _client(seller)
    sale = seller_client.get("/seller/sales/req_a/").content.decode()
    assert "open: awaiting an operator" in sale and "did not come from the model named" in sale
    services.dispute_approve(dispute_id=dispute.pk, staff_user_id=staff.pk, note="refunding")
    sale = seller_client.get("/seller/sales/req_a/").content.decode()
    earnings = seller_client.get("/billing/earnings/").content.decode()
    for html in (sale, earnings):
        assert "approved: refunded" in html
        assert buyer.email not in html and "refunding" not in html
    assert 'id="dispute-table"' in earnings and "req_a" in earnings


# --- the admin ---


def test_the_queue_shows_open_disputes_oldest_first(market, staff):
    for n in range(3):
        _settle(market, f"req_{n}")
    _, second, decided = (
        services.dispute_open(buyer=market[0], request_id=f"req_{n}", reason="other")
        for n in range(3)
    )
    Dispute.objects.filter(pk=second.pk).update(created_at=timezone.now() - timedelta(days=1))
    services.dispute_reject(dispute_id=decided.pk, staff_user_id=staff.pk, note="no")
    html = operator_client(staff).get("/admin/billing/dispute/").content.decode()
    assert html.index("req_1") < html.index("req_0")
    assert "req_2" not in html
    assert "$0.00082" in html  # what the buyer paid, in dollars
    everything = operator_client(staff).get("/admin/billing/dispute/?state=all").content.decode()
    assert "req_2" in everything


def test_an_operator_approves_on_the_decision_page_once(market, staff):
    buyer, seller, _ = market
    _settle(market)
    dispute = services.dispute_open(buyer=buyer, request_id="req_a", reason="broken_output")
    client = operator_client(staff)
    url = f"/admin/billing/dispute/{dispute.pk}/decide/"
    page = client.get(url).content.decode()
    assert "deepseek-chat" in page and 'id="dispute-approve"' in page  # the generation record
    balance = selectors.wallet_summary(user=buyer)["balance_nusd"]
    earnings = selectors.earnings_summary(seller=seller)["available_nusd"]
    response = client.post(url, {"decision": "approve", "note": "Refunded."})
    assert response.status_code == 302
    again = client.post(url, {"decision": "approve", "note": "Refunded."})  # a double submission
    assert again.status_code == 200 and "was already approved" in again.content.decode()
    assert LedgerTransaction.objects.filter(kind=TransactionKind.REFUND).count() == 1
    assert selectors.wallet_summary(user=buyer)["balance_nusd"] == balance + 820_000
    assert selectors.earnings_summary(seller=seller)["available_nusd"] == earnings - 738_000
    dispute.refresh_from_db()
    assert (dispute.status, dispute.decided_by_id) == ("approved", staff.pk)


def test_a_rejection_without_a_note_is_refused_on_the_page(market, staff):
    _settle(market)
    dispute = services.dispute_open(buyer=market[0], request_id="req_a", reason="other")
    url = f"/admin/billing/dispute/{dispute.pk}/decide/"
    response = operator_client(staff).post(url, {"decision": "reject", "note": ""})
    assert response.status_code == 200 and "needs a note" in response.content.decode()
    response = operator_client(staff).post(url, {"decision": "delete", "note": "x"})
    assert "Approve or reject." in response.content.decode()
    assert Dispute.objects.get().status == "open"


def test_staff_without_the_decide_permission_get_a_403(market):
    _settle(market)
    dispute = services.dispute_open(buyer=market[0], request_id="req_a", reason="other")
    viewer = user_make(is_staff=True, verified=None)
    viewer.user_permissions.add(Permission.objects.get(codename="view_dispute"))
    client = operator_client(viewer)
    assert client.get("/admin/billing/dispute/").status_code == 200
    url = f"/admin/billing/dispute/{dispute.pk}/decide/"
    assert client.get(url).status_code == 403
    assert client.post(url, {"decision": "approve"}).status_code == 403
    assert Dispute.objects.get().status == "open"
