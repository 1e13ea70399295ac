"""Every call to Stripe lives here: Checkout Session creation and webhook verification.

The stripe SDK (with requests and httpx) is imported on first use, not with billing: the /v1
gateway process imports billing's services and never talks to Stripe.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from django.conf import settings

from billing.errors import StripeNotConfigured, WebhookInvalid

if TYPE_CHECKING:
    import stripe

WEBHOOK_TOLERANCE_SECONDS = 300
REQUEST_TIMEOUT_SECONDS = 20


def is_configured() -> bool:
    """Top-ups need the secret key (sessions) and the webhook secret (fulfilment)."""
    return bool(settings.STRIPE_SECRET_KEY and settings.STRIPE_WEBHOOK_SECRET)


def _client() -> stripe.StripeClient:
    import stripe

    if not is_configured():
        raise StripeNotConfigured("Card payments are not configured on this installation.")
    return stripe.StripeClient(
        settings.STRIPE_SECRET_KEY,
        base_addresses={"api": settings.STRIPE_API_BASE},
        http_client=stripe.RequestsClient(timeout=REQUEST_TIMEOUT_SECONDS),
        max_network_retries=2,
    )


def checkout_session_create(
    *,
    amount_cents: int,
    topup_id: int,
    user_id: int,
    email: str,
    success_url: str,
    cancel_url: str,
) -> tuple[str, str]:
    """Create a one-off Checkout Session for a top-up; returns (session id, hosted page URL)."""
    session = _client().v1.checkout.sessions.create(
        params={
            "mode": "payment",
            "client_reference_id": str(topup_id),
            "customer_email": email,
            "metadata": {"topup_id": str(topup_id), "user_id": str(user_id)},
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": "usd",
                        "unit_amount": amount_cents,
                        "product_data": {"name": "Dragonfly credit"},
                    },
                }
            ],
            "success_url": success_url + "?session_id={CHECKOUT_SESSION_ID}",
            "cancel_url": cancel_url,
        },
        options={"idempotency_key": f"dragonfly-topup-{topup_id}"},
    )
    return session.id, session.url or ""


def webhook_event_parse(*, payload: bytes, signature_header: str | None) -> dict[str, Any]:
    """Verify a delivery's signature on the raw body (with a timestamp tolerance) and return the
    event as plain data. Raises WebhookInvalid for anything forged, stale or re-serialised."""
    secret = settings.STRIPE_WEBHOOK_SECRET
    if not secret:
        raise WebhookInvalid("No webhook secret is configured.")
    if not signature_header:
        raise WebhookInvalid("Missing Stripe-Signature header.")
    import stripe

    try:
        stripe.Webhook.construct_event(
            payload, signature_header, secret, tolerance=WEBHOOK_TOLERANCE_SECONDS
        )
        event = json.loads(payload)
    except (stripe.SignatureVerificationError, ValueError) as exc:
        raise WebhookInvalid(str(exc) or "Invalid webhook delivery.") from None
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        raise WebhookInvalid("Not a Stripe event.")
    return event
