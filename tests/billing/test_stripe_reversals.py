"""Stripe refunds and disputes of a top-up debit the buyer's wallet through the ledger, once per
Stripe event, even below zero; a negative wallet takes no hold until a top-up (real commits)."""

import json
import threading

import pytest
from django.db import connection
from django.test import Client

from billing import checks, selectors, services
from billing.errors import InsufficientBalance
from billing.models import (
    Hold,
    LedgerAccount,
    LedgerTransaction,
    StripeReversal,
    TopUp,
    UsageRecord,
)
from billing.money import NUSD_PER_USD
from tests.accounts.factories import user_make
from tests.billing.factories import settlement_make
from tests.billing.test_stripe_webhook import _stripe_settings, deliver, event, sign  # noqa: F401
from tests.market.factories import listing_row_make

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("_stripe_settings"),
]
USD = NUSD_PER_USD


def _pay(user, *, session: str, intent: str, usd: int = 20) -> TopUp:
    """A $usd top-up paid through the signed checkout.session.completed webhook."""
    topup = services.topup_create(user=user, amount_nusd=usd * USD)
    services.topup_session_attach(topup=topup, session_id=session)
    payload = json.loads(
        event(
            "checkout.session.completed",
            session_id=session,
            topup_id=topup.pk,
            amount_cents=usd * 100,
        )
    )
    payload["data"]["object"]["payment_intent"] = intent
    assert deliver(json.dumps(payload)).status_code == 200
    topup.refresh_from_db()
    assert topup.stripe_payment_intent == intent
    return topup


def dispute(event_id: str, *, intent: str, cents: object, dispute_id: str = "dp_1") -> str:
    return json.dumps(
        {
            "id": event_id,
            "object": "event",
            "type": "charge.dispute.created",
            "data": {
                "object": {
                    "id": dispute_id,
                    "object": "dispute",
                    "amount": cents,
                    "currency": "usd",
                    "charge": "ch_1",
                    "payment_intent": intent,
                    "reason": "fraudulent",
                    "status": "needs_response",
                }
            },
        }
    )


def refund(event_id: str, *, intent: str, refunded_cents: int) -> str:
    return json.dumps(
        {
            "id": event_id,
            "object": "event",
            "type": "charge.refunded",
            "data": {
                "object": {
                    "id": "ch_1",
                    "object": "charge",
                    "amount": 2000,
                    "amount_refunded": refunded_cents,
                    "currency": "usd",
                    "payment_intent": intent,
                    "refunded": refunded_cents == 2000,
                }
            },
        }
    )


@pytest.fixture
def spent():
    """A buyer who topped up $20 and spent $15 of it with a seller."""
    buyer, seller = user_make(verified=None), user_make(verified=None)
    listing = listing_row_make(seller=seller)
    _pay(buyer, session="cs_1", intent="pi_1")
    services.hold_place(request_id="spend", user_id=buyer.pk, amount_nusd=15 * USD)
    services.request_settle(
        settlement=settlement_make(
            buyer=buyer,
            seller=seller,
            listing=listing,
            request_id="spend",
            input_units=15_000_000,
            output_units=0,
            ask_input_nusd=USD,  # $1 / M
        )
    )
    assert selectors.wallet_summary(user=buyer)["balance_nusd"] == 5 * USD
    return buyer, seller, listing


def _balance(user) -> int:
    return LedgerAccount.objects.get(user=user, kind="wallet").balance_nusd


def _reversal_state():
    return (
        list(
            LedgerTransaction.objects.filter(kind__in=["chargeback", "stripe_refund"]).values_list(
                "kind", flat=True
            )
        ),
        list(StripeReversal.objects.values_list("event_id", "debited_nusd").order_by("id")),
    )


def test_a_dispute_after_spending_takes_the_wallet_negative_and_refuses_holds(spent):
    buyer, _, _ = spent
    response = deliver(dispute("evt_d1", intent="pi_1", cents=2000))
    assert (response.status_code, response.content) == (200, b"debited")
    assert _balance(buyer) == -15 * USD
    txn = LedgerTransaction.objects.get(kind="chargeback")
    assert sorted(txn.entries.values_list("account__kind", "amount_nusd")) == [
        ("chargebacks", 20 * USD),
        ("wallet", -20 * USD),
    ]
    assert checks.ledger_check_run() == []
    # The dashboard says why, and the refunded money no longer counts toward plan unlocks.
    assert selectors.lifetime_topups_nusd(user=buyer) == 0
    client = Client()
    client.force_login(buyer)
    for page in ("/dashboard/", "/billing/"):
        html = client.get(page).content.decode()
        assert "Your balance is -$15.00." in html, page
        assert "a dispute (chargeback, “fraudulent”) of top-up #" in html, page
        assert "refused (403 “Insufficient balance”)" in html, page
    # No hold, however small, until a top-up brings the wallet above zero.
    with pytest.raises(InsufficientBalance):
        services.hold_place(request_id="after", user_id=buyer.pk, amount_nusd=1)
    _pay(buyer, session="cs_2", intent="pi_2", usd=20)
    assert _balance(buyer) == 5 * USD
    assert "negative-balance" not in client.get("/billing/").content.decode()
    services.hold_place(request_id="after", user_id=buyer.pk, amount_nusd=USD)
    assert checks.ledger_check_run() == []


def test_a_redelivered_dispute_is_booked_once(spent):
    buyer, _, _ = spent
    payload = dispute("evt_d1", intent="pi_1", cents=2000)
    assert deliver(payload).content == b"debited"
    assert deliver(payload).content == b"already booked"
    # Another event for the same dispute (never sent by Stripe, but no second debit either).
    assert deliver(dispute("evt_d1_bis", intent="pi_1", cents=2000)).content == b"already booked"
    assert _balance(buyer) == -15 * USD
    assert _reversal_state() == (["chargeback"], [("evt_d1", 20 * USD)])


def test_concurrent_deliveries_of_one_event_debit_once(spent):
    buyer, _, _ = spent
    payload = dispute("evt_d1", intent="pi_1", cents=2000)
    header = sign(payload)
    barrier = threading.Barrier(12)
    answers: list[tuple[int, bytes]] = []

    def run():
        try:
            barrier.wait()
            response = deliver(payload, header)
            answers.append((response.status_code, response.content))
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(answers) == [(200, b"already booked")] * 11 + [(200, b"debited")]
    assert _balance(buyer) == -15 * USD
    assert _reversal_state() == (["chargeback"], [("evt_d1", 20 * USD)])
    assert checks.ledger_check_run() == []


def test_partial_refunds_out_of_order_debit_the_cumulative_amount_once(spent):
    buyer, _, _ = spent
    # Stripe sends the cumulative refunded amount: $12 (second refund) arrives before $3.
    assert deliver(refund("evt_r2", intent="pi_1", refunded_cents=1200)).content == b"debited"
    assert deliver(refund("evt_r1", intent="pi_1", refunded_cents=300)).content == b"debited"
    assert deliver(refund("evt_r2", intent="pi_1", refunded_cents=1200)).content == (
        b"already booked"
    )
    assert _balance(buyer) == -7 * USD
    assert _reversal_state() == (["stripe_refund"], [("evt_r2", 12 * USD), ("evt_r1", 0)])
    # A dispute of the rest takes no more than what is left of the $20 top-up.
    assert deliver(dispute("evt_d1", intent="pi_1", cents=2000)).content == b"debited"
    assert _balance(buyer) == -15 * USD
    assert checks.ledger_check_run() == []


def test_a_dispute_voids_the_holds_in_flight_and_their_requests_still_settle(spent):
    buyer, seller, listing = spent
    services.hold_place(request_id="inflight", user_id=buyer.pk, amount_nusd=4 * USD)
    assert deliver(dispute("evt_d1", intent="pi_1", cents=2000)).content == b"debited"
    assert Hold.objects.get(request_id="inflight").status == "voided"
    assert LedgerAccount.objects.get(user=buyer, kind="wallet").held_nusd == 0
    result = services.request_settle(
        settlement=settlement_make(
            buyer=buyer, seller=seller, listing=listing, request_id="inflight"
        )
    )
    record = UsageRecord.objects.get(request_id="inflight")
    assert (record.buyer_debit_nusd, record.overrun_nusd) == (0, result.cost_nusd)
    assert _balance(buyer) == -15 * USD
    assert checks.ledger_check_run() == []


def test_a_dispute_within_the_available_balance_leaves_holds_alone(spent):
    buyer, _, _ = spent
    services.hold_place(request_id="inflight", user_id=buyer.pk, amount_nusd=USD)
    assert deliver(dispute("evt_d1", intent="pi_1", cents=300)).content == b"debited"
    assert Hold.objects.get(request_id="inflight").status == "active"
    assert _balance(buyer) == 2 * USD


def test_an_unknown_charge_is_503_so_stripe_retries_and_nothing_is_written(spent):
    before = _reversal_state()
    response = deliver(dispute("evt_x", intent="pi_unknown", cents=2000))
    assert (response.status_code, response.content) == (503, b"no top-up matches this charge yet")
    assert _reversal_state() == before


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (dispute("evt_x", intent="", cents=2000), b"The Stripe event has no valid payment intent."),
        (dispute("evt_x", intent="pi_1", cents=-5), b"is not a whole number of cents."),
        (dispute("evt_x", intent="pi_1", cents="20"), b"is not a whole number of cents."),
    ],
)
def test_a_malformed_event_is_400_and_changes_nothing(spent, payload, message):
    buyer, _, _ = spent
    before = (_reversal_state(), _balance(buyer))
    response = deliver(payload)
    assert response.status_code == 400 and message in response.content
    assert (_reversal_state(), _balance(buyer)) == before


def test_a_dispute_landing_amid_concurrent_holds_and_settlements_keeps_the_ledger_sound(
    billing_impl,
):
    """The gateway keeps holding and settling for the buyer while the dispute is booked (real
    commits, two threads): every request either settles or is refused, the dispute is booked
    once, and ledger_check finds nothing wrong."""
    buyer, seller = user_make(verified=None), user_make(verified=None)
    listing = listing_row_make(seller=seller)
    _pay(buyer, session="cs_1", intent="pi_1")
    started = threading.Event()
    outcomes: list[str] = []

    def spend():
        try:
            for n in range(200):
                request_id = f"r{n}"
                try:
                    services.hold_place(request_id=request_id, user_id=buyer.pk, amount_nusd=USD)
                except InsufficientBalance:
                    outcomes.append("refused")
                    if outcomes.count("refused") == 3:
                        return
                    continue
                started.set()
                services.request_settle(
                    settlement=settlement_make(
                        buyer=buyer,
                        seller=seller,
                        listing=listing,
                        request_id=request_id,
                        input_units=400_000,
                        output_units=0,
                        ask_input_nusd=USD,  # $0.40 each
                    )
                )
                outcomes.append("settled")
        finally:
            connection.close()

    def dispute_now():
        try:
            started.wait(10)
            assert deliver(dispute("evt_d1", intent="pi_1", cents=2000)).content == b"debited"
        finally:
            connection.close()

    threads = [threading.Thread(target=spend), threading.Thread(target=dispute_now)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("refused") == 3 and outcomes.count("settled") <= 50
    assert _reversal_state() == (["chargeback"], [("evt_d1", 20 * USD)])
    records = UsageRecord.objects.filter(buyer=buyer)
    paid = sum(records.values_list("buyer_debit_nusd", flat=True))
    assert _balance(buyer) == 20 * USD - paid - 20 * USD
    assert not Hold.objects.filter(status="active").exists()
    assert checks.ledger_check_run() == []
