"""/v1/messages and /v1/messages/count_tokens through the real server and the official anthropic SDK."""

import anthropic
import httpx
import pytest

from billing.models import Hold, UsageRecord
from billing.money import usd_to_nusd

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
MODEL = "deepseek/deepseek-chat"
HELLO = [{"role": "user", "content": "Hello!"}]
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "The weather in a city.",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


def _settled_once(world, request_id: str) -> UsageRecord:
    record = world.usage(request_id)
    assert record is not None
    assert UsageRecord.objects.filter(request_id=request_id).count() == 1
    return record


def test_messages_create_answers_an_anthropic_message_with_diagnostics_and_one_settlement(world):
    buyer = world.buyer()
    listing = world.listing(key="sim-e2e-msg")
    world.routable(MODEL, 1)
    raw = world.anthropic(buyer.key).messages.with_raw_response.create(
        model=MODEL, max_tokens=50, messages=HELLO
    )
    message = raw.parse()
    assert message.type == "message"
    assert message.role == "assistant"
    assert message.model == MODEL
    assert message.id.startswith("msg_")
    assert message.stop_reason == "end_turn"
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text
    diagnostics = {name: value for name, value in raw.headers.items() if name.startswith("x-df-")}
    assert diagnostics == {
        "x-df-market-route": "seller",
        "x-df-market-provider": "deepseek",
        "x-df-market-listing-id": str(listing.pk),
        "x-df-upstream-model": "deepseek-v4-flash",
        "x-df-market-ask-input": "0.4",
        "x-df-market-ask-output": "1.2",
        "x-df-market-fee-profile-id": diagnostics["x-df-market-fee-profile-id"],
        "x-df-market-request-id": diagnostics["x-df-market-request-id"],
        "x-df-cost": diagnostics["x-df-cost"],  # the settled debit: checked below
    }
    assert diagnostics["x-df-market-fee-profile-id"].isdigit()
    assert raw.headers["x-ratelimit-limit-requests"] == "unlimited"
    upstream = world.sim.app.stats()["keys"]["sim-e2e-msg"]["last_body"]
    assert upstream["max_tokens"] == 50
    assert upstream["messages"] == [{"role": "user", "content": "Hello!"}]
    record = _settled_once(world, raw.headers["x-df-market-request-id"])
    assert record.listing_id == listing.pk
    assert record.input_units == message.usage.input_tokens
    assert record.output_units == message.usage.output_tokens
    assert (
        record.cost_nusd == message.usage.input_tokens * 400 + message.usage.output_tokens * 1_200
    )
    assert record.streamed is False
    assert usd_to_nusd(diagnostics["x-df-cost"]) == record.buyer_debit_nusd == record.cost_nusd
    assert world.wallet(buyer)["held_nusd"] == 0


def test_messages_stream_delivers_text_stop_reason_and_the_billed_usage(world):
    buyer = world.buyer()
    world.listing(key="sim-e2e-msgstream?tokens=8")
    world.routable(MODEL, 1)
    with world.anthropic(buyer.key).messages.stream(
        model=MODEL, max_tokens=100, messages=HELLO
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
        request_id = stream.response.headers["x-df-market-request-id"]
        assert stream.response.headers["x-df-market-route"] == "seller"
    assert len(text.split()) == 8
    assert final.content[0].text == text
    assert final.model == MODEL
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 8
    record = _settled_once(world, request_id)
    assert record.streamed is True
    assert record.outcome == "completed"
    assert record.output_units == final.usage.output_tokens
    assert record.input_units == final.usage.input_tokens
    upstream = world.sim.app.stats()["keys"]["sim-e2e-msgstream"]["last_body"]
    assert upstream["stream_options"] == {"include_usage": True}


def test_a_tool_use_round_trip_keeps_the_ids_and_ends_the_turn(world):
    buyer = world.buyer()
    world.listing(key="sim-e2e-msgtools")
    world.routable(MODEL, 1)
    client = world.anthropic(buyer.key)
    question = {"role": "user", "content": "Use get_weather for Paris"}
    first = client.messages.create(
        model=MODEL, max_tokens=200, tools=[WEATHER_TOOL], messages=[question]
    )
    assert first.stop_reason == "tool_use"
    calls = [block for block in first.content if block.type == "tool_use"]
    assert len(calls) == 1
    assert calls[0].name == "get_weather"
    assert isinstance(calls[0].input, dict)
    second = client.messages.create(
        model=MODEL,
        max_tokens=200,
        tools=[WEATHER_TOOL],
        messages=[
            question,
            {"role": "assistant", "content": first.content},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": calls[0].id, "content": "sunny"}
                ],
            },
        ],
    )
    assert second.stop_reason == "end_turn"
    assert [block.type for block in second.content] == ["text"]
    assert second.content[0].text == "The tool returned: sunny"
    upstream = world.sim.app.stats()["keys"]["sim-e2e-msgtools"]["last_body"]
    assert upstream["messages"][1]["tool_calls"][0]["id"] == calls[0].id
    assert upstream["messages"][2] == {
        "role": "tool",
        "tool_call_id": calls[0].id,
        "content": "sunny",
    }
    assert upstream["tools"][0]["function"]["name"] == "get_weather"


def test_count_tokens_estimates_without_holding_or_billing(world):
    buyer = world.buyer()
    world.listing(key="sim-e2e-count")
    world.routable(MODEL, 1)
    counted = world.anthropic(buyer.key).messages.count_tokens(
        model=MODEL, system="Be brief.", messages=[{"role": "user", "content": "Hello, world"}]
    )
    assert counted.input_tokens == 6  # ceil((len('Be brief.') + len('Hello, world')) / 4)
    assert Hold.objects.filter(user=buyer.user).count() == 0
    assert UsageRecord.objects.filter(buyer=buyer.user).count() == 0
    assert world.sim.app.stats()["keys"].get("sim-e2e-count") is None


def test_a_claude_name_routes_through_the_profile_alias_and_answers_under_that_name(world):
    buyer = world.buyer(
        aliases_enabled=True, model_aliases={"claude-sonnet-4-6": "deepseek/deepseek-chat"}
    )
    world.listing(key="sim-e2e-alias")
    world.routable(MODEL, 1)
    raw = world.anthropic(buyer.key).messages.with_raw_response.create(
        model="claude-sonnet-4-6", max_tokens=20, messages=HELLO
    )
    assert raw.parse().model == "claude-sonnet-4-6"
    assert raw.headers["x-df-upstream-model"] == "deepseek-v4-flash"
    assert (
        world.sim.app.stats()["keys"]["sim-e2e-alias"]["last_body"]["model"] == "deepseek-v4-flash"
    )
    record = _settled_once(world, raw.headers["x-df-market-request-id"])
    assert record.model_id == MODEL


def test_errors_come_in_anthropics_shape_as_the_sdks_exception_classes(world):
    buyer = world.buyer()
    broke = world.buyer(credit_usd="0")
    world.listing(key="sim-e2e-msgerr")
    world.routable(MODEL, 1)

    with pytest.raises(anthropic.AuthenticationError) as unauthorized:
        world.anthropic("sk-df-" + "A" * 40).messages.create(
            model=MODEL, max_tokens=10, messages=HELLO
        )
    assert unauthorized.value.status_code == 401
    assert unauthorized.value.body["type"] == "error"
    assert unauthorized.value.body["error"]["type"] == "authentication_error"
    assert "http://dragonfly.test/dashboard/keys/" in unauthorized.value.body["error"]["message"]

    with pytest.raises(anthropic.PermissionDeniedError) as balance:
        world.anthropic(broke.key).messages.create(model=MODEL, max_tokens=10, messages=HELLO)
    assert balance.value.status_code == 403
    assert balance.value.body["error"] == {
        "type": "permission_error",
        "message": "Insufficient balance",
    }
    assert balance.value.response.headers["x-ratelimit-limit-requests"] == "unlimited"

    with pytest.raises(anthropic.BadRequestError) as missing:
        world.anthropic(buyer.key).messages.create(
            model=MODEL, max_tokens=anthropic.NOT_GIVEN, messages=HELLO
        )
    assert missing.value.status_code == 400
    assert missing.value.body["error"] == {
        "type": "invalid_request_error",
        "message": "max_tokens: field required (a positive integer)",
    }

    with pytest.raises(anthropic.ServiceUnavailableError) as unavailable:
        world.anthropic(buyer.key).messages.create(
            model=MODEL,
            max_tokens=10,
            messages=HELLO,
            extra_headers={"X-Provider-Only": "nobody"},
        )
    assert unavailable.value.status_code == 503
    assert unavailable.value.body["error"] == {
        "type": "overloaded_error",
        "message": "No eligible seller channel was healthy enough for the current constraints.",
        "constraints": {"provider_only": 1},
        "market": "http://dragonfly.test/market/deepseek/deepseek-chat/",
    }
    assert (
        unavailable.value.body["request_id"]
        == (unavailable.value.response.headers["x-df-market-request-id"])
    )
    assert UsageRecord.objects.filter(buyer__in=[buyer.user, broke.user]).count() == 0


def test_the_anthropic_paths_answer_404_and_405_in_anthropics_shape(world):
    wrong_method = httpx.get(world.server.url + "/v1/messages")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"]["type"] == "invalid_request_error"
    assert wrong_method.headers["allow"] == "POST"
    unknown = httpx.post(world.server.url + "/v1/messages/batches", json={})
    assert unknown.status_code == 404
    assert unknown.json()["error"]["type"] == "not_found_error"


def test_x_api_key_authenticates_every_v1_endpoint_and_anthropic_version_is_ignored(world):
    buyer = world.buyer()
    world.listing(key="sim-e2e-xapikey")
    world.routable(MODEL, 1)
    headers = {"x-api-key": buyer.key, "anthropic-version": "2023-06-01"}
    for path, field, value in (
        ("/chat/completions", "object", "chat.completion"),
        ("/messages", "type", "message"),
    ):
        response = httpx.post(
            world.base + path,
            json={"model": MODEL, "messages": HELLO, "max_tokens": 5},
            headers=headers,
        )
        assert response.status_code == 200, response.text
        assert response.json()[field] == value
    wrong = httpx.post(
        world.base + "/chat/completions",
        json={"model": MODEL, "messages": HELLO},
        headers={"x-api-key": "sk-ant-api03-abcdef"},
    )
    assert wrong.status_code == 401
    assert "Access keys start with sk-df-" in wrong.json()["error"]["message"]
    assert "sk-ant-api03-abcdef" not in wrong.text
