"""The six x-ratelimit-* headers on every /v1 response (issue 18, item 4): errors before the
rate-limit step and GET /v1/models too, counted against the key or, without a valid key, the
client's address (gateway/limit_headers.py)."""

import asyncio
import time

import pytest
from asgiref.sync import sync_to_async
from django.test import override_settings

from accounts.keys import key_generate
from tests.gateway.factories import buyer_make

pytestmark = pytest.mark.django_db(transaction=True)

CHAT = "deepseek/deepseek-chat"
HELLO = [{"role": "user", "content": "Hi"}]
SIX = (
    "x-ratelimit-limit-requests",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-requests",
    "x-ratelimit-reset-tokens",
)
ADDRESS_LIMIT = 50

# (case, buyer kwargs or None for no key, method, path, body, expected status, counted against)
CASES = [
    ("400 body", {}, "POST", "/v1/chat/completions", {"model": CHAT, "messages": []}, 400, "key"),
    ("400 messages", {}, "POST", "/v1/messages", {"model": CHAT, "messages": HELLO}, 400, "key"),
    (
        "400 count_tokens",
        {},
        "POST",
        "/v1/messages/count_tokens",
        {"model": CHAT},
        400,
        "key",
    ),
    ("400 speech", {}, "POST", "/v1/audio/speech", {"model": CHAT, "input": ""}, 400, "key"),
    ("401 no key", None, "POST", "/v1/chat/completions", {"model": CHAT}, 401, "address"),
    ("401 bad key", "random", "POST", "/v1/chat/completions", {"model": CHAT}, 401, "address"),
    (
        "403 unverified",
        {"verified": False},
        "POST",
        "/v1/chat/completions",
        {"model": CHAT, "messages": HELLO},
        403,
        "key",
    ),
    (
        "403 terms",
        {"terms": False},
        "POST",
        "/v1/chat/completions",
        {"model": CHAT, "messages": HELLO},
        403,
        "key",
    ),
    ("404 path", None, "GET", "/v1/files", None, 404, "address"),
    ("404 path with a key", {}, "POST", "/v1/nothing-here", {}, 404, "address"),
    ("404 model", {}, "GET", "/v1/models/no-such-model", None, 404, "key"),
    ("405", None, "GET", "/v1/chat/completions", None, 405, "address"),
    ("413", {}, "POST", "/v1/chat/completions", {"model": CHAT, "messages": HELLO}, 413, "key"),
    ("200 models with a key", {}, "GET", "/v1/models", None, 200, "key"),
]


async def _same_minute(seconds: int) -> None:
    if time.time() % 60 > 60 - seconds:
        await asyncio.sleep(60 - time.time() % 60 + 0.1)


def _six(response) -> dict[str, str]:
    missing = [name for name in SIX if name not in response.headers]
    assert not missing, f"{response.status_code} {response.request.url} lacks {missing}"
    return {name: response.headers[name] for name in SIX}


@pytest.mark.parametrize(
    ("case", "who", "method", "path", "body", "status", "against"),
    CASES,
    ids=[case[0] for case in CASES],
)
async def test_every_status_carries_the_six_headers_and_counts_the_request(
    market, client, case, who, method, path, body, status, against
):
    headers = {}
    if who == "random":
        headers["Authorization"] = f"Bearer {key_generate()}"
    elif who is not None:
        buyer = await sync_to_async(buyer_make)(plan="free", **who)  # 10 requests a minute
        headers["Authorization"] = f"Bearer {buyer.key}"
    await _same_minute(5)
    seen = []
    with override_settings(
        DRAGONFLY_UNAUTHENTICATED_PER_MINUTE=ADDRESS_LIMIT,
        DRAGONFLY_MAX_BODY_BYTES=64 if status == 413 else 4 * 1024 * 1024,
    ):
        for _ in range(2):
            response = await client.request(method, path, headers=headers, json=body)
            assert response.status_code == status, response.text
            seen.append(_six(response))
    first, second = seen
    if against == "key":  # the plan's limits: 10 requests, 40,000 tokens a minute
        assert (first["x-ratelimit-limit-requests"], first["x-ratelimit-limit-tokens"]) == (
            "10",
            "40000",
        )
        assert first["x-ratelimit-remaining-requests"] == "9"
        assert first["x-ratelimit-remaining-tokens"] == "40000"  # no tokens counted
    else:  # the address's requests without a valid key
        assert first["x-ratelimit-limit-requests"] == str(ADDRESS_LIMIT)
        assert first["x-ratelimit-limit-tokens"] == "unlimited"
        assert first["x-ratelimit-remaining-requests"] == str(ADDRESS_LIMIT - 1)
    assert int(second["x-ratelimit-remaining-requests"]) == (
        int(first["x-ratelimit-remaining-requests"]) - 1
    )
    assert first["x-ratelimit-reset-requests"].endswith("s")
    assert 1 <= int(first["x-ratelimit-reset-requests"][:-1]) <= 60


async def test_models_without_a_key_reports_the_address_and_does_not_count_itself(market, client):
    await _same_minute(5)
    with override_settings(DRAGONFLY_UNAUTHENTICATED_PER_MINUTE=ADDRESS_LIMIT):
        first = _six(await client.get("/v1/models"))
        again = _six(await client.get("/v1/models/deepseek/deepseek-chat"))
        assert (await client.post("/v1/chat/completions", json={})).status_code == 401
        after = _six(await client.get("/v1/models"))
    assert first["x-ratelimit-limit-requests"] == str(ADDRESS_LIMIT)
    assert first["x-ratelimit-remaining-requests"] == str(ADDRESS_LIMIT)
    assert again["x-ratelimit-remaining-requests"] == str(ADDRESS_LIMIT)
    assert after["x-ratelimit-remaining-requests"] == str(ADDRESS_LIMIT - 1)


async def test_models_with_a_bad_key_is_a_401_counted_against_the_address(market, client):
    response = await client.get("/v1/models", headers={"Authorization": "Bearer sk-df-nope"})
    assert response.status_code == 401
    assert _six(response)["x-ratelimit-limit-requests"] == "60"


async def test_a_key_past_its_limit_still_gets_its_own_error_with_nothing_left(market, client):
    buyer = await sync_to_async(buyer_make)(plan="free", key_rpm=2)
    headers = {"Authorization": f"Bearer {buyer.key}"}
    await _same_minute(5)
    bad = {"model": CHAT, "messages": []}
    answers = [
        await client.post("/v1/chat/completions", headers=headers, json=bad) for _ in range(3)
    ]
    assert [a.status_code for a in answers] == [400, 400, 400]
    assert [a.headers["x-ratelimit-remaining-requests"] for a in answers] == ["1", "0", "0"]
    assert answers[0].headers["x-ratelimit-limit-requests"] == "2"
    # the key's limit is used up: a billed request is refused 429
    refused = await client.post(
        "/v1/chat/completions", headers=headers, json={"model": CHAT, "messages": HELLO}
    )
    assert refused.status_code == 429
