"""POST /v1/chat/completions in process: pass-through, model mapping, diagnostics, settlement."""

import pytest
from asgiref.sync import sync_to_async

from billing.models import UsageRecord
from billing.selectors import wallet_summary
from tests.gateway.factories import buyer_make
from tests.market.factories import listing_make, seller_make

pytestmark = pytest.mark.django_db(transaction=True)


def _auth(buyer):
    return {"Authorization": f"Bearer {buyer.key}"}


async def _settled(request_id):
    from gateway import background

    await background.drain()
    return await sync_to_async(lambda: UsageRecord.objects.filter(request_id=request_id).first())()


async def test_it_serves_a_completion_with_the_catalogue_model_and_diagnostics(market, client):
    buyer = await sync_to_async(buyer_make)()
    listing = await sync_to_async(lambda: listing_make(seller_make(), key="sim-chat-a"))()
    response = await client.post(
        "/v1/chat/completions",
        headers=_auth(buyer),
        json={
            "model": "deepseek/deepseek-chat",
            "messages": [{"role": "user", "content": "Hello!"}],
            "seed_extra": 1,
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == "deepseek/deepseek-chat"
    assert body["object"] == "chat.completion"
    assert response.headers["x-df-market-route"] == "seller"
    assert response.headers["x-df-market-provider"] == "deepseek"
    assert response.headers["x-df-market-listing-id"] == str(listing.pk)
    assert response.headers["x-df-upstream-model"] == "deepseek-v4-flash"
    assert response.headers["x-df-market-ask-input"] == "0.4"
    assert response.headers["x-df-market-ask-output"] == "1.2"
    upstream = market.app.stats()["keys"]["sim-chat-a"]["last_body"]
    assert upstream["model"] == "deepseek-v4-flash"
    assert upstream["seed_extra"] == 1
    record = await _settled(response.headers["x-df-market-request-id"])
    assert record is not None
    assert record.listing_id == listing.pk
    assert record.input_units == body["usage"]["prompt_tokens"]
    assert record.output_units == body["usage"]["completion_tokens"]
    summary = await sync_to_async(wallet_summary)(user=buyer.user)
    assert summary["held_nusd"] == 0
