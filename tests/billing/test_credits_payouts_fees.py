"""Signup credit, operator grants and refunds, payouts, fee profiles and the money rules."""

import io
import threading
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from billing import selectors, services
from billing.errors import AlreadyDone, InsufficientBalance, InvalidAmount, InvalidState
from billing.models import LedgerTransaction, Payout, SignupGrant
from billing.money import cost_nusd, fee_nusd, usd_to_nusd
from tests.accounts.factories import user_make
from tests.billing.factories import settlement_make

pytestmark = pytest.mark.django_db(transaction=True)
USD = 1_000_000_000


def _balance(user) -> int:
    return selectors.wallet_summary(user=user)["balance_nusd"]


def test_money_rounding_is_half_up_and_exact():
    assert cost_nusd(units=1, price_per_million_nusd=500_000) == 1  # 0.5 rounds up
    assert cost_nusd(units=1, price_per_million_nusd=499_999) == 0
    assert cost_nusd(units=3, price_per_million_nusd=270_000_000) == 810
    assert fee_nusd(cost_nusd=5, fee_bps=1000) == 1  # 0.5 rounds up
    assert fee_nusd(cost_nusd=4, fee_bps=1000) == 0
    assert usd_to_nusd("1.000000001") == 1_000_000_001
    assert usd_to_nusd(Decimal("0.27")) == 270_000_000


@pytest.mark.parametrize("value", ["NaN", "inf", "-1", "1.0000000001", "abc", "", "1e30", 1.5])
def test_usd_to_nusd_refuses_bad_values(value):
    with pytest.raises(ValueError):
        usd_to_nusd(value)


def test_signup_credit_is_granted_once_per_canonical_email():
    first = user_make("alice@example.com", verified=None)
    twin = user_make("a.lice+x@example.com", verified=None)
    twin.email_canonical = "alice@example.com"
    twin.save()
    assert services.signup_credit_grant(user=first) is True
    assert services.signup_credit_grant(user=first) is False
    assert services.signup_credit_grant(user=twin) is False
    assert (_balance(first), _balance(twin)) == (USD, 0)
    assert SignupGrant.objects.count() == 1


def test_concurrent_signup_credit_grants_once():
    user = user_make("bob@example.com", verified=None)
    barrier = threading.Barrier(10)
    results = []

    def run():
        try:
            barrier.wait()
            results.append(services.signup_credit_grant(user=user))
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 9 + [True]
    assert _balance(user) == USD


def test_grant_credit_command_credits_and_refuses_bad_amounts():
    user = user_make("carol@example.com", verified=None)
    out = io.StringIO()
    call_command("grant_credit", "carol@example.com", "2.50", "--reason", "support", stdout=out)
    assert "Granted $2.50 to carol@example.com" in out.getvalue()
    for bad, message in (
        ("-1", "cannot be negative"),
        ("0", "greater than zero"),
        ("0.0000000001", "at most 9 decimal places"),
        ("NaN", "finite"),
        ("inf", "finite"),
        ("abc", "is not a dollar amount"),
        ("", "is not a dollar amount"),
        ("1e12", "too large"),
        ("1000000001", "too large"),
        ("10000.01", "at most \\$10,000"),
    ):
        with pytest.raises(CommandError, match=message):
            call_command("grant_credit", "carol@example.com", bad, "--reason", "x")
    with pytest.raises(CommandError, match="needs a reason"):
        call_command("grant_credit", "carol@example.com", "1", "--reason", "  ")
    with pytest.raises(CommandError, match="No user"):
        call_command("grant_credit", "nobody@example.com", "1", "--reason", "x")
    assert _balance(user) == 2_500_000_000
    assert LedgerTransaction.objects.filter(kind="grant").count() == 1


def test_refund_reverses_every_leg_once(market):
    buyer, seller, listing = market
    staff = user_make(is_staff=True, is_superuser=True, verified=None)
    services.hold_place(request_id="r", user_id=buyer.pk, amount_nusd=10_000_000)
    services.request_settle(
        settlement=settlement_make(buyer=buyer, seller=seller, listing=listing, request_id="r")
    )
    services.request_refund(request_id="r", reason="wrong answer", staff_user_id=staff.pk)
    assert _balance(buyer) == USD
    assert selectors.earnings_summary(seller=seller)["available_nusd"] == 0
    with pytest.raises(AlreadyDone):
        services.request_refund(request_id="r", reason="again", staff_user_id=staff.pk)
    assert _balance(buyer) == USD
    txn = LedgerTransaction.objects.get(kind="refund")
    assert (txn.created_by_id, txn.memo) == (staff.pk, "wrong answer")


def test_wallet_adjustment_cannot_take_available_below_zero(market):
    buyer, _, _ = market
    staff = user_make(is_staff=True, is_superuser=True, verified=None)
    services.hold_place(request_id="r", user_id=buyer.pk, amount_nusd=600_000_000)
    with pytest.raises(InsufficientBalance):
        services.wallet_adjust(
            user=buyer, amount_nusd=-500_000_000, reason="fix", staff_user_id=staff.pk
        )
    assert _balance(buyer) == USD
    services.wallet_adjust(
        user=buyer, amount_nusd=-400_000_000, reason="fix", staff_user_id=staff.pk
    )
    assert selectors.wallet_summary(user=buyer)["available_nusd"] == 0


def _earn(buyer, seller, listing, request_id: str, output_units: int) -> None:
    services.request_settle(
        settlement=settlement_make(
            buyer=buyer,
            seller=seller,
            listing=listing,
            request_id=request_id,
            input_units=0,
            output_units=output_units,
            ask_output_nusd=1000 * USD,
        )
    )


def test_payout_lifecycle_moves_money_through_the_ledger(
    market, mailoutbox, django_capture_on_commit_callbacks
):
    buyer, seller, listing = market
    services.credit_grant(user=buyer, amount_nusd=100 * USD, reason="t")
    _earn(buyer, seller, listing, "sale", 20_000)  # $20 sale, $18 earned
    staff = user_make(is_staff=True, is_superuser=True, verified=None)
    with pytest.raises(InvalidAmount, match="minimum payout"):
        services.payout_request(seller=seller, amount_nusd=9 * USD)
    with pytest.raises(InsufficientBalance):
        services.payout_request(seller=seller, amount_nusd=19 * USD)
    assert Payout.objects.count() == 0
    payout = services.payout_request(seller=seller, amount_nusd=10 * USD)
    with pytest.raises(InvalidState):
        services.payout_mark_paid(payout_id=payout.pk, staff_user_id=staff.pk)
    services.payout_approve(payout_id=payout.pk, staff_user_id=staff.pk)
    assert mailoutbox == []
    with django_capture_on_commit_callbacks(execute=True):
        services.payout_mark_paid(payout_id=payout.pk, staff_user_id=staff.pk, note="SEPA ref 42")
    # The seller hears of it, in text and in the product's HTML layout.
    [mail] = mailoutbox
    assert mail.to == [seller.email]
    assert mail.subject == f"[Dragonfly] Payout #{payout.pk} of $10.00 is paid"
    assert "SEPA ref 42" in mail.body
    assert "http://127.0.0.1:8000/billing/earnings/" in mail.body
    [(html, mimetype)] = mail.alternatives
    assert mimetype == "text/html"
    assert "See your earnings" in html and "SEPA ref 42" in html
    summary = selectors.earnings_summary(seller=seller)
    assert (
        summary["available_nusd"],
        summary["paid_out_nusd"],
        summary["payouts_pending_nusd"],
    ) == (8 * USD, 10 * USD, 0)
    with pytest.raises(InvalidState):
        services.payout_reject(payout_id=payout.pk, staff_user_id=staff.pk, reason="late")
    assert [t for t in LedgerTransaction.objects.values_list("kind", flat=True).order_by("id")][
        -2:
    ] == ["payout_request", "payout_paid"]


def test_rejected_payout_returns_earnings(market):
    buyer, seller, listing = market
    services.credit_grant(user=buyer, amount_nusd=100 * USD, reason="t")
    _earn(buyer, seller, listing, "sale", 20_000)
    staff = user_make(is_staff=True, is_superuser=True, verified=None)
    payout = services.payout_request(seller=seller, amount_nusd=15 * USD)
    assert selectors.earnings_summary(seller=seller)["available_nusd"] == 3 * USD
    services.payout_reject(
        payout_id=payout.pk, staff_user_id=staff.pk, reason="bank details missing"
    )
    assert selectors.earnings_summary(seller=seller)["available_nusd"] == 18 * USD


def test_seller_fee_override_applies_to_settlement(market):
    buyer, seller, listing = market
    default_id, default_bps = selectors.fee_profile_for_seller(seller_id=seller.pk)
    assert default_bps == 1000
    vip = services.fee_profile_create(name="VIP", fee_bps=500)
    services.seller_fee_profile_set(
        seller_id=seller.pk, fee_profile=vip, reason="launch partner", staff_user_id=None
    )
    assert selectors.fee_profile_for_seller(seller_id=seller.pk) == (vip.pk, 500)
    services.hold_place(request_id="r", user_id=buyer.pk, amount_nusd=10_000_000)
    result = services.request_settle(
        settlement=settlement_make(buyer=buyer, seller=seller, listing=listing, request_id="r")
    )
    assert (result.fee_nusd, result.seller_credit_nusd, result.fee_profile_id) == (
        41_000,
        779_000,
        vip.pk,
    )
    services.seller_fee_profile_set(
        seller_id=seller.pk, fee_profile=None, reason="", staff_user_id=None
    )
    assert selectors.fee_profile_for_seller(seller_id=seller.pk) == (default_id, 1000)


@pytest.mark.parametrize("bps", [-1, 10_001, True, "100"])
def test_fee_profiles_refuse_bad_rates(bps):
    with pytest.raises(InvalidAmount):
        services.fee_profile_create(name="bad", fee_bps=bps)


def test_demo_seed_is_idempotent():
    from billing.demo import seed

    assert seed(upstream_url="http://x") == seed(upstream_url="http://x")
    assert selectors.fee_profile_for_seller(seller_id=0)[1] == 1000


def _money_state():
    from billing.models import LedgerEntry, UsageRecord

    return (
        LedgerEntry.objects.count(),
        list(LedgerTransaction.objects.values_list("kind", flat=True).order_by("id")),
        list(UsageRecord.objects.values_list("refunded_at", flat=True)),
        list(Payout.objects.values_list("status", flat=True)),
    )


def test_operator_actions_refuse_non_staff_and_blank_reasons_and_change_nothing(market):
    from billing.errors import BillingError, NotPermitted

    buyer, seller, listing = market
    services.credit_grant(user=buyer, amount_nusd=100 * USD, reason="t")
    _earn(buyer, seller, listing, "sale", 20_000)
    payout = services.payout_request(seller=seller, amount_nusd=10 * USD)
    inactive = user_make(is_staff=True, is_active=False, verified=None)
    before = _money_state()
    for actor in (seller.pk, inactive.pk, None, "1", 10**9):
        with pytest.raises(NotPermitted, match="Only an active staff user"):
            services.request_refund(request_id="sale", reason="x", staff_user_id=actor)
        with pytest.raises(NotPermitted):
            services.wallet_adjust(user=buyer, amount_nusd=USD, reason="x", staff_user_id=actor)
        with pytest.raises(NotPermitted):
            services.payout_approve(payout_id=payout.pk, staff_user_id=actor)
        with pytest.raises(NotPermitted):
            services.payout_reject(payout_id=payout.pk, staff_user_id=actor, reason="x")
    with pytest.raises(NotPermitted):
        services.credit_grant(user=buyer, amount_nusd=USD, reason="x", staff_user_id=seller.pk)
    staff = user_make(is_staff=True, is_superuser=True, verified=None)
    with pytest.raises(BillingError, match="needs a reason"):
        services.request_refund(request_id="sale", reason="  ", staff_user_id=staff.pk)
    with pytest.raises(BillingError, match="needs a reason"):
        services.wallet_adjust(user=buyer, amount_nusd=USD, reason="", staff_user_id=staff.pk)
    assert _money_state() == before
