"""Every error class through the real server and the openai SDK, in the seed's body shape."""

import httpx
import openai
import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
MODEL = "deepseek/deepseek-chat"
HELLO = [{"role": "user", "content": "Hello!"}]


def _error(response: httpx.Response) -> dict:
    body = response.json()
    assert set(body) == {"error"}
    return body["error"]


def test_401_tells_a_missing_header_from_a_wrong_prefix_a_partial_and_a_revoked_key(world):
    url = world.base + "/chat/completions"
    body = {"model": MODEL, "messages": HELLO}
    missing = httpx.post(url, json=body)
    assert missing.status_code == 401
    assert _error(missing)["message"].startswith("Missing Authorization header")
    assert _error(missing)["type"] == "unauthorized"
    assert _error(missing)["code"] == 401
    wrong = httpx.post(url, json=body, headers={"Authorization": "Bearer sk-proj-abcdef123456"})
    assert "Access keys start with sk-df-" in _error(wrong)["message"]
    assert "sk-proj-abcdef123456" not in wrong.text
    partial = httpx.post(url, json=body, headers={"Authorization": "Bearer sk-df-abc123"})
    assert "truncated or like a partial copy" in _error(partial)["message"]
    unknown_key = "sk-df-" + "A" * 40
    unknown = httpx.post(url, json=body, headers={"Authorization": f"Bearer {unknown_key}"})
    assert "old or revoked key" in _error(unknown)["message"]
    assert unknown_key not in unknown.text
    for response in (missing, wrong, partial, unknown):
        assert response.status_code == 401
        assert "http://dragonfly.test/dashboard/keys/" in _error(response)["message"]


def test_a_revoked_key_stops_working_within_seconds(world):
    from accounts.models import AccessKey
    from accounts.services import access_key_revoke

    buyer = world.buyer()
    world.listing(key="sim-e2e-revoke")
    world.routable(MODEL, 1)
    client = world.client(buyer.key)
    client.chat.completions.create(model=MODEL, messages=HELLO)
    access_key_revoke(key=AccessKey.objects.get(pk=buyer.key_id))
    world.routable(MODEL, 1)  # let a moment pass
    import time

    time.sleep(1.2)
    with pytest.raises(openai.AuthenticationError) as caught:
        client.chat.completions.create(model=MODEL, messages=HELLO)
    assert "old or revoked key" in caught.value.body["message"]


def test_403_for_unverified_email_and_unaccepted_terms_names_the_page_that_fixes_it(world):
    unverified = world.buyer(verified=False)
    no_terms = world.buyer(terms=False)
    with pytest.raises(openai.PermissionDeniedError) as caught:
        world.client(unverified.key).chat.completions.create(model=MODEL, messages=HELLO)
    assert caught.value.body["message"].endswith("http://dragonfly.test/accounts/email/")
    with pytest.raises(openai.PermissionDeniedError) as caught:
        world.client(no_terms.key).chat.completions.create(model=MODEL, messages=HELLO)
    assert caught.value.body["message"].endswith("http://dragonfly.test/dashboard/terms/")


def test_403_insufficient_balance_is_the_seeds_exact_body_and_holds_nothing(world):
    buyer = world.buyer(credit_usd="0.000001")
    world.listing(key="sim-e2e-poor")
    world.routable(MODEL, 1)
    response = httpx.post(
        world.base + "/chat/completions",
        json={"model": MODEL, "messages": HELLO},
        headers={"Authorization": f"Bearer {buyer.key}"},
    )
    assert response.status_code == 403
    assert response.json() == {
        "error": {"message": "Insufficient balance", "type": "forbidden", "code": 403}
    }
    assert world.wallet(buyer)["held_nusd"] == 0
    assert world.sim.app.stats()["keys"] == {}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"messages": HELLO}, "'model'"),
        ({"model": MODEL, "messages": []}, "'messages'"),
        ({"model": MODEL, "messages": [{"role": "robot", "content": "x"}]}, "'messages[0].role'"),
        ({"model": MODEL, "messages": HELLO, "temperature": 3}, "'temperature'"),
        ({"model": MODEL, "messages": HELLO, "top_p": -0.1}, "'top_p'"),
        ({"model": MODEL, "messages": HELLO, "max_tokens": 0}, "'max_tokens'"),
        ({"model": MODEL, "messages": HELLO, "stream": "yes"}, "'stream'"),
        ({"model": MODEL, "messages": HELLO, "stop": ["a", "b", "c", "d", "e"]}, "'stop'"),
        ({"model": MODEL, "messages": HELLO, "presence_penalty": 2.5}, "'presence_penalty'"),
        ({"model": MODEL, "messages": HELLO, "frequency_penalty": "x"}, "'frequency_penalty'"),
        (
            {"model": MODEL, "messages": HELLO, "tools": [{"type": "function"}]},
            "'tools[0].function.name'",
        ),
        ({"model": MODEL, "messages": HELLO, "tool_choice": "sometimes"}, "'tool_choice'"),
        ({"model": "nope/unknown", "messages": HELLO}, "Unknown model 'nope/unknown'"),
        ({"model": "minimax/speech-02-hd", "messages": HELLO}, "/v1/audio/speech"),
    ],
)
def test_400_names_the_field(world, body, field):
    buyer = world.buyer(strict_models=True)  # unknown names stay 400
    response = httpx.post(
        world.base + "/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {buyer.key}"},
    )
    assert response.status_code == 400
    error = _error(response)
    assert error["type"] == "bad_request"
    assert error["code"] == 400
    assert field in error["message"]


def test_malformed_json_oversized_bodies_unknown_paths_and_wrong_methods(world):
    buyer = world.buyer()
    headers = {"Authorization": f"Bearer {buyer.key}"}
    junk = httpx.post(world.base + "/chat/completions", content=b"{not json", headers=headers)
    assert junk.status_code == 400
    assert _error(junk)["message"] == "Request body is not valid JSON."
    huge = httpx.post(
        world.base + "/chat/completions", content=b"x" * (4 * 1024 * 1024 + 1), headers=headers
    )
    assert huge.status_code == 413
    assert _error(huge)["type"] == "bad_request"
    missing = httpx.get(world.base + "/nope")
    assert missing.status_code == 404
    assert _error(missing)["code"] == 404
    wrong = httpx.get(world.base + "/chat/completions", headers=headers)
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "POST"


def test_bad_routing_headers_are_a_400_naming_the_header(world):
    buyer = world.buyer()
    for header, value in [
        ("Routing-Strategy", "cheapest"),
        ("X-Max-Price", "cheap"),
        ("X-Hard-Max-TTFT-Ms", "-5"),
        ("X-Min-Throughput-TPS", "fast"),
        ("X-Privacy-Mode", "paranoid"),
        ("X-Provider-Only", "deep seek!"),
    ]:
        response = httpx.post(
            world.base + "/chat/completions",
            json={"model": MODEL, "messages": HELLO},
            headers={"Authorization": f"Bearer {buyer.key}", header: value},
        )
        assert response.status_code == 400, header
        assert header in _error(response)["message"]


def test_503_lists_what_each_constraint_removed(world):
    buyer = world.buyer()
    world.listing(key="sim-e2e-c1", percent=100)
    world.listing(key="sim-e2e-c2", percent=90)
    world.routable(MODEL, 2)
    response = httpx.post(
        world.base + "/chat/completions",
        json={"model": MODEL, "messages": HELLO},
        headers={
            "Authorization": f"Bearer {buyer.key}",
            "X-Max-Price": "0.48",  # c1 asks 0.50, c2 0.45 (untrusted)
            "X-Privacy-Mode": "trusted_only",
        },
    )
    assert response.status_code == 503
    assert response.json() == {
        "error": {
            "message": "No eligible seller channel was healthy enough for the current constraints.",
            "type": "market_unavailable",
            "code": 503,
            "constraints": {"max_price": 1, "privacy_mode": 1},
            "market": "http://dragonfly.test/market/deepseek/deepseek-chat/",
        }
    }
    assert response.headers["x-df-market-request-id"].startswith("req_")
    assert world.wallet(buyer)["held_nusd"] == 0


def test_502_when_every_listing_fails_and_nothing_is_charged_or_forwarded(world):
    buyer = world.buyer()
    world.listing(key="sim-e2e-down1?status=500")
    world.listing(key="sim-e2e-down2?status=503")
    world.routable(MODEL, 2)
    response = httpx.post(
        world.base + "/chat/completions",
        json={"model": MODEL, "messages": HELLO},
        headers={"Authorization": f"Bearer {buyer.key}"},
    )
    assert response.status_code == 502
    error = _error(response)
    assert error["type"] == "upstream_error"
    request_id = response.headers["x-df-market-request-id"]
    assert error["message"].endswith(f"(request id {request_id})")
    assert "simulated upstream error" not in response.text
    assert world.usage(request_id, wait=0.5) is None
    summary = world.wallet(buyer)
    assert (summary["held_nusd"], summary["balance_nusd"]) == (0, 10_000_000_000)
