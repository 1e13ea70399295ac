"""A buyer whose wallet a Stripe dispute took below zero is refused on /v1 with the contract's
403 "Insufficient balance" (the hold refusal covers it: no gateway code of its own) until a
top-up brings the balance above zero."""

import pytest
from asgiref.sync import sync_to_async

from billing import services
from billing.models import TopUp
from billing.selectors import wallet_summary
from tests.gateway.factories import buyer_make
from tests.market.factories import listing_make, seller_make

pytestmark = pytest.mark.django_db(transaction=True)
BODY = {
    "model": "deepseek/deepseek-chat",
    "messages": [{"role": "user", "content": "Hello!"}],
    "max_tokens": 64,
}
REFUSED = {"error": {"message": "Insufficient balance", "type": "forbidden", "code": 403}}


def _paid_topup(user, *, session: str, intent: str) -> TopUp:
    topup = services.topup_create(user=user, amount_nusd=5_000_000_000)
    services.topup_session_attach(topup=topup, session_id=session)
    assert services.topup_fulfil(
        session_id=session,
        topup_id=str(topup.pk),
        amount_total_cents=500,
        currency="usd",
        payment_intent=intent,
    )
    return topup


async def test_a_disputed_buyer_is_refused_until_a_top_up(market, client):
    buyer = await sync_to_async(buyer_make)(credit_usd="0")
    await sync_to_async(lambda: listing_make(seller_make()))()
    await sync_to_async(_paid_topup)(buyer.user, session="cs_a", intent="pi_a")
    auth = {"Authorization": f"Bearer {buyer.key}"}
    served = await client.post("/v1/chat/completions", headers=auth, json=BODY)
    assert served.status_code == 200, served.text
    await sync_to_async(services.topup_reversal_book)(
        event_id="evt_dispute",
        kind="dispute",
        stripe_object_id="dp_a",
        payment_intent="pi_a",
        amount_cents=500,
        currency="usd",
        reason="fraudulent",
    )
    balance = (await sync_to_async(wallet_summary)(user=buyer.user))["balance_nusd"]
    assert balance < 0
    refused = await client.post("/v1/chat/completions", headers=auth, json=BODY)
    assert (refused.status_code, refused.json()) == (403, REFUSED)
    anthropic = await client.post(
        "/v1/messages",
        headers={"x-api-key": buyer.key, "anthropic-version": "2023-06-01"},
        json={**BODY, "model": "deepseek/deepseek-chat"},
    )
    assert anthropic.status_code == 403
    assert anthropic.json()["error"]["message"] == "Insufficient balance"
    assert (await sync_to_async(wallet_summary)(user=buyer.user))["balance_nusd"] == balance
    await sync_to_async(_paid_topup)(buyer.user, session="cs_b", intent="pi_b")
    again = await client.post("/v1/chat/completions", headers=auth, json=BODY)
    assert again.status_code == 200, again.text
