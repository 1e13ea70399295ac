"""Billing pages: owners see their own money, others get a login redirect or a 404; CSV exports."""

import csv
import io

import pytest
from django.test import Client, override_settings
from django.utils import timezone

from billing import services
from tests.accounts.factories import user_make
from tests.billing.factories import settlement_make
from tests.market.factories import listing_row_make

pytestmark = pytest.mark.django_db(transaction=True)


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _csv(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(b"".join(response).decode())))


@pytest.fixture
def settled(market):
    buyer, seller, listing = market
    services.hold_place(request_id="req-1", user_id=buyer.pk, amount_nusd=10_000_000)
    services.request_settle(
        settlement=settlement_make(buyer=buyer, seller=seller, listing=listing, request_id="req-1")
    )
    return buyer, seller, listing


@pytest.mark.parametrize(
    "path", ["/billing/", "/billing/usage/", "/billing/earnings/", "/billing/usage/req-1/"]
)
def test_anonymous_visitors_are_sent_to_log_in(settled, path):
    response = Client().get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_credits_page_shows_balance_history_and_chart(settled):
    buyer, _, _ = settled
    with override_settings(STRIPE_SECRET_KEY="", STRIPE_WEBHOOK_SECRET=""):
        response = _client(buyer).get("/billing/")
    html = response.content.decode()
    assert response.status_code == 200
    assert '<div class="stat" id="balance">$0.99918</div>' in html  # $1 - $0.00082, exactly
    assert '<div class="stat" id="available">$0.99918</div>' in html
    assert "<svg" in html and 'class="bar"' in html
    assert "Card payments are not configured on this installation" in html
    assert "req-1" in html


def test_credits_page_offers_top_ups_when_stripe_is_configured(settled):
    buyer, _, _ = settled
    with override_settings(STRIPE_SECRET_KEY="sk_test_x", STRIPE_WEBHOOK_SECRET="whsec_x"):
        html = _client(buyer).get("/billing/").content.decode()
    for amount in (5, 20, 50, 100):
        assert f'<button type="submit">${amount}</button>' in html
    assert "not configured" not in html


def test_top_up_without_stripe_is_refused_plainly(settled):
    buyer, _, _ = settled
    with override_settings(STRIPE_SECRET_KEY="", STRIPE_WEBHOOK_SECRET=""):
        response = _client(buyer).post("/billing/topup/", {"amount_usd": "20"}, follow=True)
    assert "Card payments are not configured here" in response.content.decode()


@pytest.mark.parametrize("amount", ["4.99", "1000.01", "abc", "NaN", "-5", "10.001", "1e9"])
def test_top_up_refuses_bad_amounts(settled, amount):
    from billing.models import TopUp

    buyer, _, _ = settled
    with override_settings(STRIPE_SECRET_KEY="sk_test_x", STRIPE_WEBHOOK_SECRET="whsec_x"):
        response = _client(buyer).post("/billing/topup/", {"amount_usd": amount}, follow=True)
    assert response.status_code == 200
    assert TopUp.objects.count() == 0
    assert 'class="message error"' in response.content.decode()


def test_usage_page_and_csv_show_only_the_owners_requests(settled):
    buyer, _, listing = settled
    other = user_make(verified=None)
    client = _client(buyer)
    html = client.get("/billing/usage/").content.decode()
    assert "req-1" in html
    assert 'aria-label="Requests per day, last 30 days"' in html
    assert f"{timezone.localdate():%b %d}: 1</title>" in html  # today's bar: one request
    rows = _csv(client.get("/billing/usage/?format=csv"))
    assert rows[0][:3] == ["created_at", "request_id", "model"]
    assert [r[1:5] for r in rows[1:]] == [
        ["req-1", "deepseek/deepseek-chat", str(listing.pk), "completed"]
    ]
    assert rows[1][11:13] == ["0.00082", "0.00082"]
    assert "req-1" not in _client(other).get("/billing/usage/").content.decode()
    assert _csv(_client(other).get("/billing/usage/?format=csv")) == [rows[0]]


def test_usage_detail_is_404_for_other_users(settled):
    buyer, _, _ = settled
    assert _client(buyer).get("/billing/usage/req-1/").status_code == 200
    assert _client(user_make(verified=None)).get("/billing/usage/req-1/").status_code == 404


def test_ledger_csv_export(settled):
    buyer, _, _ = settled
    rows = _csv(_client(buyer).get("/billing/?format=csv"))
    assert rows[0] == ["created_at", "transaction", "kind", "request_id", "memo", "amount_usd"]
    assert [(r[2], r[3], r[5]) for r in rows[1:]] == [
        ("settlement", "req-1", "-0.00082"),
        ("grant", "", "1"),
    ]


def test_earnings_page_for_seller_and_404_for_buyers(settled):
    buyer, seller, listing = settled
    html = _client(seller).get("/billing/earnings/").content.decode()
    assert "listing #" + str(listing.pk) in html
    assert 'aria-label="Seller portal"' in html  # the seller portal's navigation, as on its pages
    assert "<svg" in html
    rows = _csv(_client(seller).get("/billing/earnings/?format=csv"))
    assert [(r[1], r[7], r[8], r[9], r[10]) for r in rows[1:]] == [
        ("req-1", "0.00082", "0.000082", "1000", "0.000738")
    ]
    assert _client(buyer).get("/billing/earnings/").status_code == 404
    assert _client(buyer).get("/billing/earnings/?format=csv").status_code == 404


def test_payout_request_form_moves_earnings_and_refuses_below_minimum():
    from billing import selectors
    from billing.models import Payout

    seller = user_make(verified=None)
    listing_row_make(seller=seller)
    buyer = user_make(verified=None)
    services.credit_grant(user=buyer, amount_nusd=100_000_000_000, reason="t")
    services.hold_place(request_id="big", user_id=buyer.pk, amount_nusd=50_000_000_000)
    services.request_settle(
        settlement=settlement_make(
            buyer=buyer,
            seller=seller,
            listing=listing_row_make(seller=seller),
            request_id="big",
            input_units=0,
            output_units=20_000_000,
        )
    )  # $22 sale, $19.80 to the seller
    client = _client(seller)
    client.post("/billing/earnings/payout/", {"amount_usd": "9.99"})
    assert Payout.objects.count() == 0
    client.post("/billing/earnings/payout/", {"amount_usd": "19.81"})
    assert Payout.objects.count() == 0
    response = client.post("/billing/earnings/payout/", {"amount_usd": "15"}, follow=True)
    assert "Payout requested" in response.content.decode()
    assert selectors.earnings_summary(seller=seller)["available_nusd"] == 4_800_000_000
    assert selectors.earnings_summary(seller=seller)["payouts_pending_nusd"] == 15_000_000_000


def test_seller_statement_listing_and_payout_csv_exports():
    seller = user_make(verified=None)
    listing = listing_row_make(seller=seller, name="fast chat")
    buyer = user_make(verified=None)
    services.credit_grant(user=buyer, amount_nusd=100_000_000_000, reason="t")
    services.request_settle(
        settlement=settlement_make(
            buyer=buyer,
            seller=seller,
            listing=listing,
            request_id="big",
            input_units=0,
            output_units=20_000_000,
        )
    )  # $22 sale, $19.80 to the seller
    services.payout_request(seller=seller, amount_nusd=15_000_000_000)
    client = _client(seller)
    statement = _csv(client.get("/billing/earnings/?format=statement"))
    assert statement[0] == ["created_at", "transaction", "kind", "request_id", "memo", "amount_usd"]
    assert [(r[2], r[3], r[5]) for r in statement[1:]] == [
        ("payout_request", "", "-15"),
        ("settlement", "big", "19.8"),
    ]
    listings = _csv(client.get("/billing/earnings/?format=listings"))
    assert listings == [
        [
            "listing_id",
            "listing",
            "requests",
            "input_units",
            "output_units",
            "sales_usd",
            "fee_usd",
            "earned_usd",
            "sla_promised",
            "sla_breached",
            "sla_waived_usd",
        ],
        [str(listing.pk), "fast chat", "1", "0", "20000000", "22", "2.2", "19.8", "0", "0", "0"],
    ]
    payouts = _csv(client.get("/billing/earnings/?format=payouts"))
    assert payouts[0] == ["requested_at", "payout", "amount_usd", "status", "decided_at", "note"]
    assert [r[2:4] for r in payouts[1:]] == [["15", "requested"]]
    for export in ("statement", "listings", "payouts"):
        assert _client(buyer).get(f"/billing/earnings/?format={export}").status_code == 404
