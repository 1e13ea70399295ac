"""Operators and the signup credit: the queue of held credits (approve once, reject, permissions)
and the payout page's share of earnings from buyers who never paid, with the top buyers behind it."""

import re
import threading

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client

from billing import selectors, services
from billing.errors import InvalidState, NotPermitted
from billing.models import LedgerTransaction, Payout, SignupCreditRequest, SignupGrant
from tests.accounts.factories import user_make
from tests.billing.factories import settlement_make
from tests.market.factories import listing_row_make
from tests.operators import operator_client

pytestmark = pytest.mark.django_db(transaction=True)
USD = 1_000_000_000
QUEUE = "/admin/billing/signupcreditrequest/"


def _balance(user) -> int:
    return selectors.wallet_summary(user=user)["balance_nusd"]


@pytest.fixture
def held(settings):
    """A buyer whose signup credit waits: the address limit was full."""
    settings.DRAGONFLY_SIGNUP_CREDITS_PER_IP_PER_DAY = 0
    buyer = user_make("held@example.com", signup_ip="192.0.2.5", verified=None)
    assert services.signup_credit_grant(user=buyer) is False
    record = SignupCreditRequest.objects.get(user=buyer)
    assert (record.status, record.held_by, _balance(buyer)) == ("pending", "address", 0)
    return buyer, record


def _staff_client(staff) -> Client:
    return operator_client(staff)


def _state():
    return (
        list(SignupCreditRequest.objects.values_list("status", "decided_by_id")),
        SignupGrant.objects.count(),
        LedgerTransaction.objects.count(),
    )


def test_approving_a_held_credit_grants_it_once_even_when_approved_twice(held):
    buyer, record = held
    operator = user_make(is_staff=True, is_superuser=True, verified=None)
    client = _staff_client(operator)
    action = {"action": "signup_credit_approve", "_selected_action": [record.pk]}
    assert client.post(QUEUE, action).status_code == 302
    record.refresh_from_db()
    assert (record.status, record.decided_by_id) == ("approved", operator.pk)
    assert _balance(buyer) == USD

    before = _state()
    page = client.post(QUEUE, action, follow=True)
    assert "is approved" in page.content.decode()
    assert _state() == before
    assert _balance(buyer) == USD
    assert LedgerTransaction.objects.filter(kind="signup_credit").count() == 1


def test_concurrent_approvals_grant_the_credit_once(held):
    buyer, record = held
    operators = [user_make(is_staff=True, is_superuser=True, verified=None) for _ in range(6)]
    barrier = threading.Barrier(len(operators))
    outcomes: list[str] = []

    def approve(operator) -> None:
        try:
            barrier.wait()
            services.signup_credit_approve(request_id=record.pk, staff_user_id=operator.pk)
            outcomes.append("approved")
        except InvalidState:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=approve, args=(op,)) for op in operators]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["approved"] + ["refused"] * 5
    assert _balance(buyer) == USD
    assert SignupGrant.objects.count() == 1


def test_a_view_only_staff_user_sees_the_queue_but_cannot_approve_or_reject(held):
    buyer, record = held
    viewer = user_make(is_staff=True, verified=None)
    viewer.user_permissions.add(
        Permission.objects.get(
            codename="view_signupcreditrequest", content_type__app_label="billing"
        )
    )
    client = _staff_client(viewer)
    page = client.get(QUEUE)
    assert page.status_code == 200
    html = page.content.decode()
    assert "held@example.com" in html
    assert "signup_credit_approve" not in html and "signup_credit_reject" not in html

    before = _state()
    for verb in ("approve", "reject"):
        client.post(QUEUE, {"action": f"signup_credit_{verb}", "_selected_action": [record.pk]})
    with pytest.raises(NotPermitted):
        services.signup_credit_approve(request_id=record.pk, staff_user_id=viewer.pk)
    assert _state() == before
    assert _balance(buyer) == 0

    # With the decide permission the same user can.
    viewer.user_permissions.add(
        Permission.objects.get(
            codename="decide_signupcreditrequest", content_type__app_label="billing"
        )
    )
    client.post(QUEUE, {"action": "signup_credit_approve", "_selected_action": [record.pk]})
    assert _balance(buyer) == USD


def test_a_rejected_credit_stays_rejected(held):
    buyer, record = held
    operator = user_make(is_staff=True, is_superuser=True, verified=None)
    client = _staff_client(operator)
    client.post(QUEUE, {"action": "signup_credit_reject", "_selected_action": [record.pk]})
    record.refresh_from_db()
    assert (record.status, record.decided_by_id) == ("rejected", operator.pk)
    before = _state()
    with pytest.raises(InvalidState):
        services.signup_credit_approve(request_id=record.pk, staff_user_id=operator.pk)
    assert services.signup_credit_grant(user=buyer) is False
    assert _state() == before and _balance(buyer) == 0


def _topup(user, cents: int, session: str) -> None:
    record = services.topup_create(user=user, amount_nusd=cents * 10_000_000)
    services.topup_session_attach(topup=record, session_id=session)
    assert services.topup_fulfil(
        session_id=session, topup_id=str(record.pk), amount_total_cents=cents, currency="usd"
    )


def _sale(buyer, seller, listing, request_id: str, cost_millidollars: int) -> None:
    """A settled request costing `cost_millidollars` / 1000 USD; the seller earns 90% of it."""
    services.request_settle(
        settlement=settlement_make(
            buyer=buyer,
            seller=seller,
            listing=listing,
            request_id=request_id,
            input_units=0,
            output_units=cost_millidollars,
            ask_output_nusd=1000 * USD,
        )
    )


@pytest.fixture
def payout_with_farmed_sales():
    seller = user_make("seller@example.com", signup_ip="2001:db8:aa:bb::1", verified=None)
    listing = listing_row_make(seller=seller)
    # Two buyers living on signup credit, one of them signed up from the seller's own /64.
    twin = user_make("twin@example.com", signup_ip="2001:db8:aa:bb::99", verified=None)
    stranger = user_make("stranger@example.com", signup_ip="198.51.100.20", verified=None)
    late = user_make("late@example.com", signup_ip="198.51.100.21", verified=None)
    payer = user_make("payer@example.com", verified=None)
    for buyer in (twin, stranger, late):
        assert services.signup_credit_grant(user=buyer) is True
    _topup(payer, 2000, "cs_payer")
    _sale(twin, seller, listing, "t1", 500)  # $0.50 cost, $0.45 earned
    _sale(stranger, seller, listing, "s1", 1000)  # $1.00, $0.90
    _sale(late, seller, listing, "l1", 200)  # $0.20 on free credit, $0.18
    _topup(late, 500, "cs_late")
    _sale(late, seller, listing, "l2", 1000)  # $1.00 after paying: $0.90, not counted
    _sale(payer, seller, listing, "p1", 10_000)  # $10.00, $9.00
    payout = services.payout_request(seller=seller, amount_nusd=10 * USD)
    return payout, (twin, stranger, late, payer)


def test_the_payout_pages_show_the_share_from_buyers_who_never_paid_and_the_top_buyers(
    payout_with_farmed_sales,
):
    payout, _ = payout_with_farmed_sales
    client = _staff_client(user_make(is_staff=True, is_superuser=True, verified=None))
    # $1.53 of $11.43 earned = 13.4%.
    listing_page = client.get("/admin/billing/payout/")
    assert listing_page.status_code == 200
    assert '<td class="field-free_credit_share">13.4%</td>' in listing_page.content.decode()

    page = client.get(f"/admin/billing/payout/{payout.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    share = re.search(r'<p id="free-credit-share">(.*?)</p>', html)
    assert share and share.group(1).startswith("$1.53 of the $11.43 earned from the first sale")
    assert "(13.4%)" in share.group(1)
    rows = re.findall(
        r"<tr><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td></tr>", html
    )
    assert rows == [
        ("stranger@example.com", "$0.90", "1", "never", "198.51.100.20"),
        ("twin@example.com", "$0.45", "1", "never", "2001:db8:aa:bb::/64 (the seller&#x27;s too)"),
        ("late@example.com", "$0.18", "1", "yes, later", "198.51.100.21"),
    ]


def test_the_payout_share_counts_the_sales_since_the_previous_payout(payout_with_farmed_sales):
    payout, (twin, _, _, payer) = payout_with_farmed_sales
    seller, listing = payout.seller, payout.seller.listings.get()
    _topup(payer, 2000, "cs_payer_2")
    _sale(payer, seller, listing, "p2", 12_000)  # $10.80 earned, paid
    _sale(twin, seller, listing, "t2", 400)  # $0.36 earned on the twin's last free credit
    second = services.payout_request(seller=seller, amount_nusd=10 * USD)
    exposure = selectors.payout_signup_credit_exposure(payout=second)
    assert exposure["since"] == payout.requested_at
    assert (exposure["earned_nusd"], exposure["free_credit_nusd"]) == (
        11_160_000_000,
        360_000_000,
    )
    assert [buyer["email"] for buyer in exposure["top_buyers"]] == ["twin@example.com"]

    # A rejected payout's money went back to earnings: the window reaches past it.
    staff = user_make(is_staff=True, is_superuser=True, verified=None)
    services.payout_reject(payout_id=payout.pk, staff_user_id=staff.pk, reason="check")
    exposure = selectors.payout_signup_credit_exposure(payout=second)
    assert exposure["since"] is None
    assert exposure["free_credit_nusd"] == 1_530_000_000 + 360_000_000
    assert Payout.objects.count() == 2
