"""A script manages its account through the real servers with a personal token (issue 19, item 4):
it creates a routing profile and a key, lists and revokes the key over /api/ with httpx, and the
key it made works on /v1 (openai SDK) until the revocation, then stops on both servers."""

import time

import httpx
import openai
import pytest

from accounts import tokens_services
from accounts.models import AccessKey, RoutingProfile

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
MODEL = "deepseek/deepseek-chat"
HELLO = [{"role": "user", "content": "Hello!"}]


def _token(world, user, scopes) -> str:
    _, secret = world.db(
        tokens_services.personal_token_create, user=user, name=f"script {scopes}", scopes=scopes
    )
    return secret


def _api(world, secret: str) -> httpx.Client:
    return httpx.Client(
        base_url=world.server.url + "/api",
        headers={"Authorization": f"Bearer {secret}"},
        timeout=15,
    )


def test_a_script_creates_a_profile_and_a_key_uses_it_and_revokes_it(world):
    world.listing()
    for server in world.servers:
        world.routable(MODEL, 1, server=server)
    buyer = world.buyer()
    secret = _token(world, buyer.user, ["read", "keys:write", "profiles:write"])

    with _api(world, secret) as api:
        profile = api.post(
            "/profiles/create/", json={"name": "From a script", "provider_only": ["deepseek"]}
        )
        assert profile.status_code == 201, profile.text
        assert profile.json()["provider_only"] == ["deepseek"]
        created = api.post(
            "/keys/create/", json={"name": "scripted", "profile_id": profile.json()["id"]}
        )
        assert created.status_code == 201, created.text
        key = created.json()
        assert key["secret"].startswith("sk-df-") and key["prefix"] == key["secret"][:14]
        listed = api.get("/keys/").json()
        assert [k["name"] for k in listed if k["id"] == key["id"]] == ["scripted"]
        assert all("secret" not in k for k in listed)

    row = world.db(AccessKey.objects.select_related("profile").get, id=key["id"])
    assert (row.user_id, row.profile.name) == (buyer.user.id, "From a script")

    for server in world.servers:
        client = openai.OpenAI(
            base_url=server.url + "/v1", api_key=key["secret"], max_retries=0, timeout=30
        )
        raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=HELLO)
        assert raw.http_response.status_code == 200
        record = world.usage(raw.headers["x-df-market-request-id"])
        assert record is not None and record.access_key_id == key["id"]

    with _api(world, secret) as api:  # the management API is the web processes'
        revoked = api.post(f"/keys/{key['id']}/revoke/")
        assert revoked.status_code == 200 and revoked.json()["revoked_at"]

    # The gateway caches a key's record for DRAGONFLY_KEY_CACHE_SECONDS (1 here): within seconds
    # both servers refuse it.
    for server in world.servers:
        deadline = time.monotonic() + 10
        while True:
            answer = httpx.post(
                server.url + "/v1/chat/completions",
                headers={"Authorization": f"Bearer {key['secret']}"},
                json={"model": MODEL, "messages": HELLO},
                timeout=30,
            )
            if answer.status_code == 401 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert answer.status_code == 401
        assert answer.json()["error"]["type"] == "unauthorized"


def test_a_read_only_token_lists_but_cannot_create_and_a_revoked_token_is_refused(world):
    buyer = world.buyer()
    secret = _token(world, buyer.user, ["read"])
    with _api(world, secret) as api:
        assert [k["id"] for k in api.get("/keys/").json()] == [buyer.key_id]
        refused = api.post("/keys/create/", json={"name": "nope"})
        assert refused.status_code == 403
        assert refused.json() == {"detail": "This personal token lacks the “keys:write” scope."}
        profile = api.post("/profiles/create/", json={"name": "nope"})
        assert profile.status_code == 403
    assert world.db(AccessKey.objects.filter(user=buyer.user).count) == 1
    assert not world.db(RoutingProfile.objects.filter(name="nope").exists)

    from accounts.models import PersonalToken

    token = world.db(PersonalToken.objects.get, user=buyer.user)
    world.db(tokens_services.personal_token_revoke, token=token)
    with _api(world, secret) as api:
        answer = api.get("/keys/")
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == 'Bearer realm="api"'
    assert answer.json() == {"detail": "This personal token was revoked."}
