"""GET /v1/generation through the real server (Daphne, PostgreSQL, Redis, the simulator upstream):
the record of a plain request, an aliased one and a failed-over one, asked with the official SDK's
raw response for the request id; 404 alike for another account's id and an unknown one; 400 for a
missing or malformed id; 401 without a valid key."""

import json

import httpx
import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
MODEL = "deepseek/deepseek-chat"
HELLO = [{"role": "user", "content": "Hello!"}]
NUSD = 1_000_000_000


def _generation(world, key: str, request_id: str | None = None, *, query: str | None = None):
    url = world.base + "/generation" + (query if query is not None else f"?id={request_id}")
    return httpx.get(url, headers={"Authorization": f"Bearer {key}"}, timeout=10)


def _chat(world, buyer, model: str = MODEL):
    raw = world.client(buyer.key).chat.completions.with_raw_response.create(
        model=model, messages=HELLO, max_tokens=20
    )
    request_id = raw.headers["x-df-market-request-id"]
    assert world.usage(request_id) is not None  # settled
    return raw.parse(), request_id


def test_a_plain_requests_record_matches_its_usage_record_and_answer(world):
    buyer = world.buyer()
    listing = world.listing(key="sim-e2e-gen-plain")
    world.routable(MODEL, 1)
    completion, request_id = _chat(world, buyer)

    response = _generation(world, buyer.key, request_id)

    assert response.status_code == 200, response.text
    assert "x-ratelimit-limit-requests" in response.headers
    data = response.json()["data"]
    print("\nGET /v1/generation ->", json.dumps(data, indent=1))
    record = world.usage(request_id)
    assert data["id"] == request_id
    assert data["created_at"].startswith(record.created_at.strftime("%Y-%m-%dT%H:%M:%S"))
    assert (data["model"], data["model_resolved"], data["alias_source"]) == (MODEL, MODEL, None)
    assert data["provider_name"] == listing.provider.name
    assert data["listing_id"] == listing.pk
    assert data["upstream_model"] == record.upstream_model
    assert data["price_unit"] == "token"
    # the listing asks 80 % of list: $0.40 in, $1.20 out per million tokens
    assert (data["ask_input_usd_per_million"], data["ask_output_usd_per_million"]) == (0.4, 1.2)
    assert data["fee_bps"] == record.fee_bps
    assert data["fee_profile"] == record.fee_profile.name
    assert data["tokens_prompt"] == completion.usage.prompt_tokens
    assert data["tokens_completion"] == completion.usage.completion_tokens
    debit = completion.usage.prompt_tokens * 400 + completion.usage.completion_tokens * 1200
    assert data["buyer_debit_nusd"] == record.buyer_debit_nusd == debit
    assert data["total_cost"] == debit / NUSD
    assert data["cost_nusd"] == data["buyer_debit_nusd"] + data["overrun_nusd"]
    assert data["cost_nusd"] == data["seller_credit_nusd"] + data["fee_nusd"]
    assert (data["seller_credit_nusd"], data["fee_nusd"], data["overrun_nusd"]) == (
        record.seller_credit_nusd,
        record.fee_nusd,
        0,
    )
    assert data["ttft_ms"] == record.ttft_ms and data["duration_ms"] == record.duration_ms
    assert data["throughput_tps"] == round(
        completion.usage.completion_tokens * 1000 / record.duration_ms, 2
    )
    assert (data["streamed"], data["outcome"], data["refunded"]) == (False, "completed", False)
    assert data["attempts"] == [
        {
            "listing_id": listing.pk,
            "provider_name": listing.provider.name,
            "outcome": "served",
            "reason": None,
        }
    ]


def test_an_aliased_request_shows_the_name_sent_and_how_it_resolved(world):
    buyer = world.buyer()
    world.listing(key="sim-e2e-gen-alias")
    world.routable(MODEL, 1)
    _, request_id = _chat(world, buyer, model="gpt-4o")

    data = _generation(world, buyer.key, request_id).json()["data"]

    assert (data["model"], data["model_resolved"], data["alias_source"]) == (
        "gpt-4o",
        MODEL,
        "builtin_alias",
    )


def test_a_failed_over_request_lists_each_listing_tried_and_why(world):
    buyer = world.buyer()
    broken = world.listing(key="sim-e2e-gen-broken?status=502", percent=50)
    good = world.listing(key="sim-e2e-gen-good", percent=90)
    world.routable(MODEL, 2)
    _, request_id = _chat(world, buyer)

    # x-api-key is accepted like Bearer
    response = httpx.get(
        world.base + f"/generation?id={request_id}", headers={"x-api-key": buyer.key}, timeout=10
    )

    data = response.json()["data"]
    name = good.provider.name
    assert data["listing_id"] == good.pk
    assert data["attempts"] == [
        {
            "listing_id": broken.pk,
            "provider_name": name,
            "outcome": "failed_over",
            "reason": "http_502",
        },
        {"listing_id": good.pk, "provider_name": name, "outcome": "served", "reason": None},
    ]


def test_another_accounts_request_is_a_404_like_an_unknown_one(world):
    buyer, other = world.buyer(), world.buyer()
    world.listing(key="sim-e2e-gen-404")
    world.routable(MODEL, 1)
    _, request_id = _chat(world, buyer)
    unknown = "req_" + "0" * 24

    theirs = _generation(world, other.key, request_id)
    nobodys = _generation(world, other.key, unknown)

    assert theirs.status_code == nobodys.status_code == 404
    assert theirs.json()["error"]["type"] == nobodys.json()["error"]["type"]
    assert theirs.text.replace(request_id, unknown) == nobodys.text
    assert _generation(world, buyer.key, request_id).status_code == 200  # the owner's key reads it


@pytest.mark.parametrize(
    "query",
    [
        "",
        "?",
        "?id=",
        "?ids=req_0123",
        "?id=abc",
        "?id=req_",
        "?id=req_%00",
        "?id=req_..%2F..%2Fetc",
        "?id=req_%ff%fe",
        "?id=req_" + "a" * 97,
        "?id=%27%20OR%201%3D1--",
        "?id=req_1&id=req_2",
    ],
)
def test_a_missing_or_malformed_id_is_a_400(world, query):
    buyer = world.buyer()
    response = _generation(world, buyer.key, query=query)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["type"] == "bad_request"


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer sk-df-not-a-real-key"}])
def test_without_a_valid_key_it_is_a_401(world, headers):
    response = httpx.get(world.base + "/generation?id=req_" + "0" * 24, headers=headers, timeout=10)
    assert response.status_code == 401
    assert "error" in response.json()
