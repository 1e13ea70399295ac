"""A request that is refused after the limits were counted (503, 502, 403) must not keep its
worst-case token estimate: it used no tokens. (Fails at 0b44ea8: the second 503 is a 429.)"""

import pytest
from asgiref.sync import sync_to_async

from tests.gateway.factories import buyer_make

pytestmark = pytest.mark.django_db(transaction=True)


async def test_a_refused_request_gives_its_token_estimate_back(market, client):
    buyer = await sync_to_async(buyer_make)(plan="starter", key_tpm=10_000)
    statuses = []
    for _ in range(3):  # no listing: each is a 503 that may use 2 + 8,192 tokens
        response = await client.post(
            "/v1/chat/completions",
            headers={"Authorization": f"Bearer {buyer.key}"},
            json={
                "model": "deepseek/deepseek-chat",
                "messages": [{"role": "user", "content": "Hello!"}],
            },
        )
        statuses.append(response.status_code)
    assert statuses == [503, 503, 503]
    assert response.headers["x-ratelimit-remaining-tokens"] == str(10_000 - 8_194)
