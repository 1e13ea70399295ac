"""The real server and the unmodified official SDKs with the model names they send out of the box,
and the rate-limit headers of answers without a valid key (issue 18, items 3 and 4)."""

import json
import time

import httpx
import pytest

MODEL = "deepseek/deepseek-chat"
HELLO = [{"role": "user", "content": "Hello!"}]
SIX = (
    "x-ratelimit-limit-requests",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-requests",
    "x-ratelimit-reset-tokens",
)


def _billed_at_the_listings_ask(world, request_id: str, usage_in: int, usage_out: int):
    record = world.usage(request_id)
    assert record is not None
    assert record.model_id == MODEL
    # the listing asks 80 % of list: $0.40 in, $1.20 out per million tokens
    assert (record.ask_input_nusd, record.ask_output_nusd) == (400_000_000, 1_200_000_000)
    assert record.buyer_debit_nusd == usage_in * 400 + usage_out * 1200
    return record


def test_the_openai_sdk_asking_for_gpt_4o_is_served_by_the_catalogue_model(world):
    buyer = world.buyer()
    listing = world.listing(key="sim-e2e-gpt4o")
    world.routable(MODEL, 1)
    raw = world.client(buyer.key).chat.completions.with_raw_response.create(
        model="gpt-4o", messages=HELLO, max_tokens=20
    )
    completion = raw.parse()
    print("\nPOST /v1/chat/completions model=gpt-4o ->", raw.http_response.status_code)
    print("X-DF-Model-Alias:", raw.headers["x-df-model-alias"])
    print(json.dumps(completion.model_dump(exclude_none=True), indent=1))
    assert completion.model == "gpt-4o"
    assert raw.headers["x-df-model-alias"] == "gpt-4o -> deepseek/deepseek-chat"
    assert raw.headers["x-df-model-alias-source"] == "builtin_alias"
    assert raw.headers["x-df-market-listing-id"] == str(listing.pk)
    assert all(name in raw.headers for name in SIX)
    assert world.sim.app.stats()["keys"]["sim-e2e-gpt4o"]["last_body"]["model"] == (
        "deepseek-v4-flash"
    )
    _billed_at_the_listings_ask(
        world,
        raw.headers["x-df-market-request-id"],
        completion.usage.prompt_tokens,
        completion.usage.completion_tokens,
    )


def test_the_openai_sdk_streams_under_the_alias_too(world):
    buyer = world.buyer()
    world.listing(key="sim-e2e-gpt4o-stream")
    world.routable(MODEL, 1)
    chunks = list(
        world.client(buyer.key).chat.completions.create(
            model="gpt-4o-mini", messages=HELLO, stream=True, max_tokens=20
        )
    )
    assert chunks and {chunk.model for chunk in chunks} == {"gpt-4o-mini"}


def test_the_anthropic_sdk_asking_for_claude_sonnet_4_6_needs_no_profile_alias(world):
    buyer = world.buyer()  # a Default profile: no aliases of its own
    world.listing(key="sim-e2e-claude")
    world.routable(MODEL, 1)
    raw = world.anthropic(buyer.key).messages.with_raw_response.create(
        model="claude-sonnet-4-6", max_tokens=20, messages=HELLO
    )
    message = raw.parse()
    assert message.model == "claude-sonnet-4-6"
    assert raw.headers["x-df-model-alias"] == "claude-sonnet-4-6 -> deepseek/deepseek-chat"
    assert raw.headers["x-df-upstream-model"] == "deepseek-v4-flash"
    _billed_at_the_listings_ask(
        world,
        raw.headers["x-df-market-request-id"],
        message.usage.input_tokens,
        message.usage.output_tokens,
    )


def test_the_openai_sdk_lists_the_aliases_and_retrieves_one(world):
    buyer = world.buyer()
    world.listing(key="sim-e2e-alias-list")
    world.routable(MODEL, 1)
    client = world.client(buyer.key)
    page = client.models.list()
    assert [m.id for m in page.data] == [MODEL]
    assert {"id": "gpt-4o", "alias_of": MODEL, "modality": "chat"} in page.model_extra["aliases"]
    assert page.model_extra["default_models"]["chat"] == MODEL
    alias = client.models.retrieve("claude-sonnet-4-6")
    assert (alias.id, alias.model_extra["alias_of"]) == ("claude-sonnet-4-6", MODEL)


def test_a_strict_profile_gets_a_400_for_gpt_4o(world):
    import openai

    buyer = world.buyer(strict_models=True)
    world.listing(key="sim-e2e-strict")
    world.routable(MODEL, 1)
    with pytest.raises(openai.BadRequestError) as caught:
        world.client(buyer.key).chat.completions.create(model="gpt-4o", messages=HELLO)
    assert caught.value.body["message"].startswith("Unknown model 'gpt-4o'.")
    assert all(name in caught.value.response.headers for name in SIX)
    assert world.sim.app.stats()["keys"].get("sim-e2e-strict") is None


def test_401_and_404_carry_the_addresss_rate_limit_headers_and_count(world):
    if time.time() % 60 > 55:  # all four in one fixed window
        time.sleep(60 - time.time() % 60 + 0.1)
    answers = [
        httpx.post(world.base + "/chat/completions", json={"model": MODEL, "messages": HELLO}),
        httpx.post(
            world.base + "/chat/completions",
            json={"model": MODEL, "messages": HELLO},
            headers={"Authorization": "Bearer sk-df-" + "A" * 40},
        ),
        httpx.get(world.base + "/files"),
        httpx.get(world.base + "/models"),
    ]
    print("\nGET /v1/files ->", answers[2].status_code, answers[2].text)
    print({name: answers[2].headers[name] for name in SIX})
    assert [a.status_code for a in answers] == [401, 401, 404, 200]
    for answer in answers:
        assert all(name in answer.headers for name in SIX), answer.headers
        assert answer.headers["x-ratelimit-limit-requests"] == "60"
        assert answer.headers["x-ratelimit-limit-tokens"] == "unlimited"
    remaining = [int(a.headers["x-ratelimit-remaining-requests"]) for a in answers]
    # 401, 401 and 404 each count; GET /v1/models without a key reports without counting.
    assert remaining == [59, 58, 57, 57]
