"""Starting a top-up creates a real Checkout Session request, answered by a Stripe-shaped server."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest
from django.test import Client, override_settings

from billing.models import TopUp
from tests.accounts.factories import user_make

pytestmark = pytest.mark.django_db


class _FakeStripe(BaseHTTPRequestHandler):
    """Answers POST /v1/checkout/sessions as Stripe does; keeps what it was sent."""

    received: list[dict] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        self.received.append(
            {
                "path": self.path,
                "form": parse_qs(body),
                "auth": self.headers.get("Authorization"),
                "idempotency": self.headers.get("Idempotency-Key"),
            }
        )
        answer = json.dumps(
            {
                "id": "cs_test_123",
                "object": "checkout.session",
                "url": "https://checkout.stripe.com/c/pay/cs_test_123",
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_stripe():
    _FakeStripe.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeStripe)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", _FakeStripe.received
    server.shutdown()


def test_a_top_up_opens_a_checkout_session_for_the_chosen_amount(fake_stripe):
    base, received = fake_stripe
    user = user_make(verified=None)
    client = Client()
    client.force_login(user)
    with override_settings(
        STRIPE_SECRET_KEY="sk_test_x", STRIPE_WEBHOOK_SECRET="whsec_x", STRIPE_API_BASE=base
    ):
        response = client.post("/billing/topup/", {"amount_usd": "20"})

    assert response.status_code == 302
    assert response["Location"] == "https://checkout.stripe.com/c/pay/cs_test_123"
    topup = TopUp.objects.get(user=user)
    assert (topup.status, topup.stripe_session_id) == ("pending", "cs_test_123")
    assert topup.requested_nusd == 20_000_000_000
    assert topup.amount_nusd == 0  # nothing is credited until Stripe's webhook says paid
    [call] = received
    assert call["path"] == "/v1/checkout/sessions"
    assert call["auth"] == "Bearer sk_test_x"
    assert call["idempotency"] == f"dragonfly-topup-{topup.pk}"
    assert call["form"]["line_items[0][price_data][unit_amount]"] == ["2000"]
    assert call["form"]["metadata[topup_id]"] == [str(topup.pk)]


def test_an_amount_out_of_bounds_never_reaches_stripe(fake_stripe):
    base, received = fake_stripe
    user = user_make(verified=None)
    client = Client()
    client.force_login(user)
    with override_settings(
        STRIPE_SECRET_KEY="sk_test_x", STRIPE_WEBHOOK_SECRET="whsec_x", STRIPE_API_BASE=base
    ):
        response = client.post("/billing/topup/", {"amount_usd": "1000000"})

    assert response.status_code == 302
    assert response["Location"] == "/billing/"
    assert received == []
    assert not TopUp.objects.filter(user=user).exists()
