"""/api/ with a personal token: every scope against every method, the 401s, CSRF, and the rule
that a view declares nothing to be readable with `read` and writable by no token."""

import json
import logging
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView

from accounts import keys, services, tokens, tokens_services
from accounts.models import AccessKey, PersonalToken, RoutingProfile

ALL = ["read", "keys:write", "profiles:write"]


@pytest.fixture
def things(buyer, providers):
    """A key and a profile of the buyer's to read, revoke, change and delete."""
    profile = services.routing_profile_create(user=buyer, name="Spare")
    key, _ = services.access_key_create(user=buyer, name="existing")
    return {"key": key.id, "profile": profile.id}


def _bearer(user, scopes, **kwargs) -> dict[str, str]:
    _, secret = tokens_services.personal_token_create(
        user=user, name=f"t{PersonalToken.objects.count()}", scopes=scopes, **kwargs
    )
    return {"HTTP_AUTHORIZATION": f"Bearer {secret}"}


# (method, URL name, args from `things`, JSON body, the scope it needs)
OPERATIONS = [
    ("get", "api_account", None, None, "read"),
    ("get", "api_key_list", None, None, "read"),
    ("get", "api_key_detail", "key", None, "read"),
    ("get", "api_profile_list", None, None, "read"),
    ("get", "api_profile_detail", "profile", None, "read"),
    ("post", "api_key_create", None, {"name": "from a script"}, "keys:write"),
    ("post", "api_key_revoke", "key", None, "keys:write"),
    ("post", "api_profile_create", None, {"name": "Scripted"}, "profiles:write"),
    ("patch", "api_profile_update", "profile", {"soft_min_tps": 50}, "profiles:write"),
    ("delete", "api_profile_delete", "profile", None, "profiles:write"),
]


def _call(client: Client, operation, things, headers):
    method, name, arg, body, _ = operation
    url = reverse(name, args=[things[arg]] if arg else [])
    extra = {"data": json.dumps(body), "content_type": "application/json"} if body else {}
    return getattr(client, method)(url, **extra, **headers)


def _state():
    return (
        list(AccessKey.objects.values().order_by("id")),
        list(RoutingProfile.objects.values().order_by("id")),
    )


@pytest.mark.parametrize("operation", OPERATIONS, ids=[op[1] for op in OPERATIONS])
@pytest.mark.parametrize("scope", ALL)
def test_each_scope_opens_exactly_its_operations(buyer, things, operation, scope):
    client = Client(enforce_csrf_checks=True)  # a token needs no CSRF token
    headers = _bearer(buyer, [scope])
    before = _state()
    response = _call(client, operation, things, headers)
    if scope == operation[4]:
        assert response.status_code in (200, 201, 204), response.content
    else:
        assert response.status_code == 403
        assert response.json() == {
            "detail": f"This personal token lacks the “{operation[4]}” scope."
        }
        assert _state() == before


@pytest.mark.parametrize("operation", OPERATIONS, ids=[op[1] for op in OPERATIONS])
def test_a_token_with_every_scope_does_what_the_session_does(buyer, things, operation):
    response = _call(Client(enforce_csrf_checks=True), operation, things, _bearer(buyer, ALL))
    assert response.status_code in (200, 201, 204), response.content


def test_the_writes_do_what_they_say_with_a_token(buyer, things):
    client = Client(enforce_csrf_checks=True)
    headers = _bearer(buyer, ["keys:write", "profiles:write"])
    created = client.post(
        reverse("api_key_create"),
        data=json.dumps({"name": "ci", "profile_id": things["profile"]}),
        content_type="application/json",
        **headers,
    )
    assert created.status_code == 201
    assert created["Cache-Control"] == "no-store"
    key = AccessKey.objects.get(name="ci")
    assert (key.user, key.profile_id) == (buyer, things["profile"])
    assert key.key_hash == keys.key_hash(created.json()["secret"])
    client.post(reverse("api_key_revoke", args=[key.id]), **headers)
    key.refresh_from_db()
    assert key.revoked_at is not None


def test_a_token_cannot_reach_another_users_objects(buyer, other, things):
    headers = _bearer(other, ALL)
    client = Client()
    before = _state()
    assert client.get(reverse("api_key_detail", args=[things["key"]]), **headers).status_code == 404
    assert (
        client.post(reverse("api_key_revoke", args=[things["key"]]), **headers).status_code == 404
    )
    deleted = client.delete(reverse("api_profile_delete", args=[things["profile"]]), **headers)
    assert deleted.status_code == 404
    assert _state() == before
    assert client.get(reverse("api_key_list"), **headers).json() == []


def test_an_unverified_user_cannot_create_keys_with_a_token(client, make_user):
    user = make_user("fresh@example.com", verified=False)
    response = client.post(
        reverse("api_key_create"),
        data=json.dumps({"name": "k"}),
        content_type="application/json",
        **_bearer(user, ALL),
    )
    assert response.status_code == 403
    assert response.json() == {"detail": "Verify your email address to create access keys."}
    assert AccessKey.objects.count() == 0


def _refused(client, headers):
    response = client.get(reverse("api_key_list"), **headers)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    return response


def test_unknown_revoked_expired_and_inactive_tokens_get_401_with_a_reason(buyer, client, caplog):
    unknown = tokens.token_generate()
    revoked, revoked_secret = tokens_services.personal_token_create(
        user=buyer, name="old", scopes=ALL
    )
    tokens_services.personal_token_revoke(token=revoked)
    expired, expired_secret = tokens_services.personal_token_create(
        user=buyer, name="short", scopes=ALL, expires_at=timezone.now() + timedelta(days=1)
    )
    PersonalToken.objects.filter(id=expired.id).update(expires_at=timezone.now())
    cases = [
        (unknown, "Invalid personal token."),
        (revoked_secret, "This personal token was revoked."),
        (expired_secret, "This personal token has expired."),
        ("df-pat-short", "Malformed personal token: expected df-pat- and 40 letters or digits."),
    ]
    with caplog.at_level(logging.WARNING, logger="accounts.tokens"):
        for secret, message in cases:
            response = _refused(client, {"HTTP_AUTHORIZATION": f"Bearer {secret}"})
            assert response.json() == {"detail": message}
            assert secret not in response.content.decode()
    ours = [r.getMessage() for r in caplog.records if r.name == "accounts.tokens"]
    logged = "\n".join(ours)
    assert [message.split(" (")[0] for message in ours] == [
        "personal token refused: unknown",
        "personal token refused: revoked",
        "personal token refused: expired",
        "personal token refused: malformed",
    ]
    assert f"token id {revoked.id}" in logged
    for secret, _ in cases:
        assert secret not in logged and secret[7:15] not in logged

    live_headers = _bearer(buyer, ALL)
    buyer.is_active = False
    buyer.save()
    response = _refused(client, live_headers)
    assert response.json() == {"detail": "The account of this token is deactivated."}


def test_an_access_key_sent_to_the_api_is_named_as_the_mixup(buyer, client):
    _, key_secret = services.access_key_create(user=buyer, name="v1")
    response = _refused(client, {"HTTP_AUTHORIZATION": f"Bearer {key_secret}"})
    assert "access key for /v1" in response.json()["detail"]
    assert key_secret not in response.content.decode()


def test_no_credentials_is_a_401_asking_for_a_bearer_token(client, buyer):
    response = _refused(client, {})
    assert response.json() == {"detail": "Authentication credentials were not provided."}


def test_session_writes_still_need_csrf_and_a_token_does_not(buyer):
    client = Client(enforce_csrf_checks=True)
    client.force_login(buyer)
    body = {"data": json.dumps({"name": "k"}), "content_type": "application/json"}
    refused = client.post(reverse("api_key_create"), **body)
    assert refused.status_code == 403
    assert "CSRF" in refused.json()["detail"]
    assert AccessKey.objects.count() == 0
    accepted = client.post(reverse("api_key_create"), **body, **_bearer(buyer, ["keys:write"]))
    assert accepted.status_code == 201
    assert AccessKey.objects.count() == 1


def test_a_session_keeps_every_right_it_had(buyer_client, things):
    for operation in OPERATIONS:
        response = _call(buyer_client, operation, things, {})
        assert response.status_code in (200, 201, 204), (operation, response.content)


def test_a_token_records_its_use(buyer, client):
    headers = _bearer(buyer, ["read"])
    assert client.get(reverse("api_account"), **headers).status_code == 200
    assert PersonalToken.objects.get().last_used_at is not None


class _UndeclaredApi(APIView):
    """A view written with no thought of tokens (as the usage API is): GET and POST."""

    def get(self, request):
        return Response({"ok": True})

    def post(self, request):
        return Response({"wrote": True})


def test_a_view_that_declares_nothing_reads_with_read_and_refuses_token_writes(buyer):
    view = _UndeclaredApi.as_view()
    factory = APIRequestFactory()

    def call(method, scopes):
        headers = _bearer(buyer, scopes)
        return view(getattr(factory, method)("/api/anything/", **headers))

    assert call("get", ["read"]).status_code == 200
    assert call("get", ["keys:write", "profiles:write"]).status_code == 403
    refused = call("post", ALL)
    assert refused.status_code == 403
    assert refused.data == {"detail": "Personal tokens cannot do this; use the dashboard."}


def test_a_redis_blink_does_not_fail_the_call_over_its_last_used_gate(buyer, client, monkeypatch):
    """The cache that gates the last-used write is Redis: down, the call still answers and the
    timestamp is still written (its conditional UPDATE is a gate of its own)."""
    from django.core.cache import cache
    from redis.exceptions import ConnectionError as RedisConnectionError

    def down(*args, **kwargs):
        raise RedisConnectionError("Connection refused")

    monkeypatch.setattr(cache, "add", down)
    headers = _bearer(buyer, ["read"])
    assert client.get(reverse("api_account"), **headers).status_code == 200
    assert PersonalToken.objects.get().last_used_at is not None
