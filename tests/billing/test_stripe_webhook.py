"""The Stripe webhook: signed offline exactly as Stripe signs, fulfilled once per Checkout Session."""

import json
import threading
import time

import pytest
import stripe
from django.db import connection
from django.test import Client, override_settings

from billing import selectors, services
from billing.models import LedgerTransaction, TopUp
from billing.money import NUSD_PER_USD
from tests.accounts.factories import user_make

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("_stripe_settings"),
]

SECRET = "whsec_test_dragonfly"
URL = "/billing/stripe/webhook/"


@pytest.fixture
def _stripe_settings():
    with override_settings(STRIPE_WEBHOOK_SECRET=SECRET, STRIPE_SECRET_KEY="sk_test_unused"):
        yield


def sign(payload: str, *, secret: str = SECRET, timestamp: int | None = None) -> str:
    """The Stripe library's own helper for signing test payloads, offline."""
    return stripe.WebhookSignature.generate_signature_header(payload, secret, timestamp=timestamp)


def event(
    kind: str, *, session_id: str, topup_id: int, amount_cents: int = 2000, paid: str = "paid"
) -> str:
    return json.dumps(
        {
            "id": f"evt_{session_id}_{kind}",
            "object": "event",
            "type": kind,
            "data": {
                "object": {
                    "id": session_id,
                    "object": "checkout.session",
                    "client_reference_id": str(topup_id),
                    "amount_total": amount_cents,
                    "currency": "usd",
                    "payment_status": paid,
                    "metadata": {"topup_id": str(topup_id)},
                }
            },
        }
    )


def deliver(payload: str, header: str | None = None, client: Client | None = None):
    client = client or Client(raise_request_exception=False)
    headers = {"HTTP_STRIPE_SIGNATURE": header if header is not None else sign(payload)}
    return client.post(URL, data=payload, content_type="application/json", **headers)


@pytest.fixture
def pending():
    user = user_make(verified=None)
    topup = services.topup_create(user=user, amount_nusd=20 * NUSD_PER_USD)
    services.topup_session_attach(topup=topup, session_id="cs_test_1")
    return user, topup


def _state(user):
    return (
        selectors.wallet_summary(user=user)["balance_nusd"],
        LedgerTransaction.objects.filter(kind="topup").count(),
        list(TopUp.objects.values_list("status", flat=True)),
    )


def test_completed_and_paid_credits_stripes_amount(pending):
    user, topup = pending
    # The amount comes from Stripe's amount_total (here $25), not from what the browser asked for.
    response = deliver(
        event(
            "checkout.session.completed",
            session_id="cs_test_1",
            topup_id=topup.pk,
            amount_cents=2500,
        )
    )
    assert response.status_code == 200
    assert _state(user) == (25 * NUSD_PER_USD, 1, ["paid"])
    assert selectors.wallet_summary(user=user)["lifetime_topups_nusd"] == 25 * NUSD_PER_USD


def test_redelivery_credits_once(pending):
    user, topup = pending
    payload = event("checkout.session.completed", session_id="cs_test_1", topup_id=topup.pk)
    assert deliver(payload).status_code == 200
    assert deliver(payload).status_code == 200
    assert (
        deliver(
            event(
                "checkout.session.async_payment_succeeded",
                session_id="cs_test_1",
                topup_id=topup.pk,
            )
        ).status_code
        == 200
    )
    assert _state(user) == (20 * NUSD_PER_USD, 1, ["paid"])


def test_fifty_concurrent_deliveries_credit_once(pending):
    user, topup = pending
    payload = event("checkout.session.completed", session_id="cs_test_1", topup_id=topup.pk)
    header = sign(payload)
    barrier = threading.Barrier(50)
    statuses: list[int] = []

    def run():
        try:
            barrier.wait()
            statuses.append(deliver(payload, header).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * 50
    assert _state(user) == (20 * NUSD_PER_USD, 1, ["paid"])


def test_crash_after_crediting_then_redelivery_credits_once(pending, monkeypatch):
    user, topup = pending
    real = services.topup_fulfil

    def fulfil_then_crash(**kwargs):
        real(**kwargs)
        raise RuntimeError("worker died after the commit")

    monkeypatch.setattr(services, "topup_fulfil", fulfil_then_crash)
    payload = event("checkout.session.completed", session_id="cs_test_1", topup_id=topup.pk)
    assert deliver(payload).status_code == 500
    monkeypatch.setattr(services, "topup_fulfil", real)
    assert deliver(payload).status_code == 200
    assert _state(user) == (20 * NUSD_PER_USD, 1, ["paid"])


def test_crash_before_crediting_then_redelivery_credits_once(pending, monkeypatch):
    import billing.services.topups as topups

    user, topup = pending

    def crash(**kwargs):
        raise RuntimeError("database went away mid-fulfilment")

    monkeypatch.setattr(topups, "ledger_post", crash)
    payload = event("checkout.session.completed", session_id="cs_test_1", topup_id=topup.pk)
    assert deliver(payload).status_code == 500
    assert _state(user) == (0, 0, ["pending"])
    monkeypatch.undo()
    assert deliver(payload).status_code == 200
    assert _state(user) == (20 * NUSD_PER_USD, 1, ["paid"])


def test_forged_stale_reserialised_and_unsigned_deliveries_get_400_and_write_nothing(pending):
    user, topup = pending
    payload = event("checkout.session.completed", session_id="cs_test_1", topup_id=topup.pk)
    reserialised = json.dumps(json.loads(payload), indent=2)
    assert deliver(payload, sign(payload, secret="whsec_forged")).status_code == 400
    assert deliver(payload, sign(payload, timestamp=int(time.time()) - 3600)).status_code == 400
    assert deliver(reserialised, sign(payload)).status_code == 400
    assert deliver(payload, "").status_code == 400
    assert deliver(payload, "t=1,v1=deadbeef").status_code == 400
    assert _state(user) == (0, 0, ["pending"])


def test_unknown_event_type_is_acknowledged_and_ignored(pending):
    user, topup = pending
    response = deliver(event("customer.created", session_id="cs_test_1", topup_id=topup.pk))
    assert response.status_code == 200
    assert _state(user) == (0, 0, ["pending"])


def test_unpaid_completion_waits_then_async_success_credits(pending):
    user, topup = pending
    assert (
        deliver(
            event(
                "checkout.session.completed",
                session_id="cs_test_1",
                topup_id=topup.pk,
                paid="unpaid",
            )
        ).status_code
        == 200
    )
    assert _state(user) == (0, 0, ["pending"])
    assert (
        deliver(
            event(
                "checkout.session.async_payment_succeeded",
                session_id="cs_test_1",
                topup_id=topup.pk,
            )
        ).status_code
        == 200
    )
    assert _state(user) == (20 * NUSD_PER_USD, 1, ["paid"])


def test_async_payment_failure_marks_failed_and_credits_nothing(pending):
    user, topup = pending
    assert (
        deliver(
            event(
                "checkout.session.async_payment_failed",
                session_id="cs_test_1",
                topup_id=topup.pk,
                paid="unpaid",
            )
        ).status_code
        == 200
    )
    assert _state(user) == (0, 0, ["failed"])


def test_session_is_bound_by_client_reference_when_first_seen():
    user = user_make(verified=None)
    topup = services.topup_create(user=user, amount_nusd=5 * NUSD_PER_USD)
    assert (
        deliver(
            event(
                "checkout.session.completed",
                session_id="cs_new",
                topup_id=topup.pk,
                amount_cents=500,
            )
        ).status_code
        == 200
    )
    topup.refresh_from_db()
    assert (topup.stripe_session_id, topup.status, topup.amount_nusd) == (
        "cs_new",
        "paid",
        5 * NUSD_PER_USD,
    )


def test_webhook_refuses_get():
    assert Client().get(URL).status_code == 405
