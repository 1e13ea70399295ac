"""Traffic without a valid key is cheap and limited: per client address, 429 before any lookup, and
unknown keys cached apart from live ones. (Each fails at baea942: no address limit, unknown keys
forgotten after a second, and the one key cache emptied wholesale at 50,000 entries.)"""

import asyncio
import contextlib
import secrets
import time

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.test import override_settings

from accounts.keys import key_generate
from gateway import runtime
from observability.metrics import GATEWAY_ADDRESS_LIMITED, GATEWAY_KEY_LOOKUPS
from tests.gateway.factories import buyer_make
from tests.market.factories import listing_make, seller_make

pytestmark = pytest.mark.django_db(transaction=True)
MODEL = "deepseek/deepseek-chat"
BODY = {"model": MODEL, "messages": [{"role": "user", "content": "Hello!"}]}
OTHER = "198.51.100.7"


async def _same_minute(seconds: int) -> None:
    """Start where `seconds` of requests all fall in one fixed window."""
    if time.time() % 60 > 60 - seconds:
        await asyncio.sleep(60 - time.time() % 60 + 0.1)


@contextlib.asynccontextmanager
async def _client_from(host: str):
    from gateway.asgi import application

    transport = httpx.ASGITransport(app=application, client=(host, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


def _post(client, key: str | None = None, path: str = "/v1/chat/completions"):
    headers = {} if key is None else {"Authorization": f"Bearer {key}"}
    return client.post(path, headers=headers, json=BODY)


@pytest.fixture
def lookups(monkeypatch):
    """The digests the gateway looked up in the database, in order."""
    from gateway import auth

    seen: list[str] = []
    real = auth._lookup

    def counting(digest: str):
        seen.append(digest)
        return real(digest)

    monkeypatch.setattr(auth, "_lookup", counting)
    return seen


async def test_random_keys_past_the_address_limit_get_429_with_rate_limit_headers_and_no_lookup(
    client, lookups
):
    await _same_minute(10)
    limited_before = GATEWAY_ADDRESS_LIMITED._value.get()
    unknown_before = GATEWAY_KEY_LOOKUPS.labels("unknown")._value.get()
    with override_settings(DRAGONFLY_UNAUTHENTICATED_PER_MINUTE=3):
        responses = [await _post(client, key_generate()) for _ in range(5)]
        anthropic = await client.post(
            "/v1/messages", headers={"x-api-key": key_generate()}, json=BODY
        )
    assert [r.status_code for r in responses] == [401, 401, 401, 429, 429]
    assert len(lookups) == 3  # none past the limit
    refused = responses[3]
    error = refused.json()["error"]
    assert (error["type"], error["code"]) == ("rate_limit_exceeded", 429)
    assert "without a valid access key" in error["message"]
    assert "http://127.0.0.1:8000/dashboard/keys/" in error["message"]
    assert refused.headers["x-ratelimit-limit-requests"] == "3"
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert refused.headers["x-ratelimit-remaining"] == "0"
    assert refused.headers["x-ratelimit-limit-tokens"] == "unlimited"
    reset_at = int(refused.headers["x-ratelimit-reset"])
    assert reset_at % 60 == 0 and 0 < reset_at - time.time() <= 60
    assert refused.headers["retry-after"] == refused.headers["x-ratelimit-reset-requests"][:-1]
    # 401s carry the address's count too (issue 18: the headers are on every response)
    assert [r.headers["x-ratelimit-remaining-requests"] for r in responses[:3]] == ["2", "1", "0"]
    assert responses[0].headers["x-ratelimit-limit-requests"] == "3"
    assert anthropic.status_code == 429
    assert anthropic.json()["type"] == "error"
    assert anthropic.json()["error"]["type"] == "rate_limit_error"
    assert anthropic.headers["x-ratelimit-limit-requests"] == "3"
    assert len(lookups) == 3
    assert GATEWAY_ADDRESS_LIMITED._value.get() - limited_before == 3
    assert GATEWAY_KEY_LOOKUPS.labels("unknown")._value.get() - unknown_before == 3


async def test_every_kind_of_401_counts_against_the_address(market, client):
    from accounts.models import AccessKey
    from accounts.services import access_key_revoke

    buyer = await sync_to_async(buyer_make)()
    await sync_to_async(lambda: access_key_revoke(key=AccessKey.objects.get(pk=buyer.key_id)))()
    await _same_minute(10)
    with override_settings(DRAGONFLY_UNAUTHENTICATED_PER_MINUTE=5):
        failures = [
            await _post(client),  # missing
            await _post(client, "sk-proj-abcdef123456"),  # another provider's prefix
            await _post(client, "sk-df-abc123"),  # partial
            await _post(client, key_generate()),  # never issued
            await _post(client, buyer.key),  # revoked
        ]
        after = await _post(client, key_generate())
    assert [r.status_code for r in failures] == [401] * 5
    assert after.status_code == 429


async def test_the_limit_is_per_address_and_per_ipv6_64(client, lookups):
    await _same_minute(10)
    with override_settings(DRAGONFLY_UNAUTHENTICATED_PER_MINUTE=2):
        limited = [(await _post(client, key_generate())).status_code for _ in range(3)]
        async with _client_from(OTHER) as other:
            elsewhere = (await _post(other, key_generate())).status_code
        ipv6 = []
        for host in (
            "2001:db8:1:2::1",
            "2001:db8:1:2::2",
            "2001:db8:1:2:ffff::9",
            "2001:db8:1:3::1",
        ):
            async with _client_from(host) as c:
                ipv6.append((await _post(c, key_generate())).status_code)
    assert limited == [401, 401, 429]
    assert elsewhere == 401
    assert ipv6 == [401, 401, 429, 401]  # the third shares the first two's /64; the fourth does not
    assert len(lookups) == 2 + 1 + 3


async def test_a_valid_key_from_a_limited_address_still_works(market, client, lookups):
    """Limits are for traffic without a valid key: a key this process has served before bypasses
    them, even once its cached record has expired. A key it has never seen must wait out the minute
    at a limited address (telling it from a guess would take the lookup the limit saves)."""
    buyer = await sync_to_async(buyer_make)()
    newcomer = await sync_to_async(buyer_make)()
    await sync_to_async(lambda: listing_make(seller_make(), key="sim-unauth-valid"))()
    await _same_minute(15)
    with override_settings(DRAGONFLY_UNAUTHENTICATED_PER_MINUTE=2, DRAGONFLY_KEY_CACHE_SECONDS=0):
        first = await _post(client, buyer.key)
        flood = [(await _post(client, key_generate())).status_code for _ in range(3)]
        served = [(await _post(client, buyer.key)).status_code for _ in range(2)]
        looked_up = len(lookups)
        unseen = await _post(client, newcomer.key)
        assert len(lookups) == looked_up  # refused before its lookup
        async with _client_from(OTHER) as other:
            elsewhere = await _post(other, newcomer.key)
    assert first.status_code == 200
    assert flood == [401, 401, 429]
    assert served == [200, 200]  # each looked up again (no cache), none limited
    assert unseen.status_code == 429
    assert elsewhere.status_code == 200


async def test_one_unknown_key_sent_again_and_again_costs_one_lookup(client, lookups):
    await _same_minute(10)
    key = key_generate()
    together = await asyncio.gather(*(_post(client, key) for _ in range(5)))
    await asyncio.sleep(1.5)  # longer than unknown keys used to be remembered
    later = [await _post(client, key) for _ in range(2)]
    assert [r.status_code for r in [*together, *later]] == [401] * 7
    assert len(lookups) == 1


async def test_a_flood_of_60000_unknown_keys_does_not_push_a_live_key_out_of_the_cache(
    market, monkeypatch
):
    from accounts.keys import key_hash
    from gateway import auth

    buyer = await sync_to_async(buyer_make)()
    headers = {b"authorization": f"Bearer {buyer.key}".encode()}
    scope = {"client": ("203.0.113.5", 40000)}
    with override_settings(DRAGONFLY_KEY_CACHE_SECONDS=600):  # fresh for as long as the flood lasts
        assert (await auth.authenticate(headers, scope))["key_id"] == buyer.key_id
        lookups: list[str] = []

        def unknown(digest: str) -> None:
            lookups.append(digest)
            return None  # what the database says of a random key, without 60,000 queries

        monkeypatch.setattr(auth, "_lookup", unknown)
        for _ in range(60):
            await asyncio.gather(*(auth._record(secrets.token_hex(32)) for _ in range(1_000)))
        assert len(lookups) == 60_000
        record = await auth.authenticate(headers, scope)
    assert record["key_id"] == buyer.key_id
    assert len(lookups) == 60_000  # the live key came from the cache: no query
    assert key_hash(buyer.key) in runtime.caches.auth_live
    assert len(runtime.caches.auth_unknown) == 10_000  # the unknown keys' own cache stays bounded


async def test_with_redis_down_each_process_still_limits_the_address(client, lookups, monkeypatch):
    await _same_minute(10)
    await runtime.current().close_redis()  # the next call connects with the current REDIS_URL
    with override_settings(
        REDIS_URL="redis://127.0.0.1:1/0", DRAGONFLY_UNAUTHENTICATED_PER_MINUTE=2
    ):
        limited = [(await _post(client, key_generate())).status_code for _ in range(3)]
        async with _client_from(OTHER) as other:
            elsewhere = (await _post(other, key_generate())).status_code
    await runtime.current().close_redis()  # the next call connects with the current REDIS_URL
    assert limited == [401, 401, 429]
    assert elsewhere == 401
    assert len(lookups) == 3
