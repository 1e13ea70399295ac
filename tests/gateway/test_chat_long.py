"""A long plain completion arrives whole (the upstream body spans many packets)."""

import pytest
from asgiref.sync import sync_to_async

from tests.gateway.factories import buyer_make
from tests.market.factories import listing_make, seller_make

pytestmark = pytest.mark.django_db(transaction=True)


async def test_a_long_plain_completion_is_read_to_its_end(market, client):
    buyer = await sync_to_async(buyer_make)()
    await sync_to_async(lambda: listing_make(seller_make(), key="sim-long-plain?tokens=60000"))()
    response = await client.post(
        "/v1/chat/completions",
        headers={"Authorization": f"Bearer {buyer.key}"},
        json={
            "model": "deepseek/deepseek-chat",
            "messages": [{"role": "user", "content": "Write a lot"}],
            "max_tokens": 60000,
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["usage"]["completion_tokens"] == 60000
    assert len(body["choices"][0]["message"]["content"].split()) == 60000
