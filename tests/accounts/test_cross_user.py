"""One user can never read or change another's keys or profiles: 404, and nothing changes."""

import json

import pytest
from django.urls import reverse

from accounts import services
from accounts.models import AccessKey, RoutingProfile


@pytest.fixture
def victim_objects(other):
    profile = services.routing_profile_create(user=other, name="Theirs")
    key, _ = services.access_key_create(user=other, name="their-key", profile=profile)
    return {"key": key.id, "profile": profile.id}


def _state():
    return (
        list(AccessKey.objects.values().order_by("id")),
        list(RoutingProfile.objects.values().order_by("id")),
    )


PAGE_CASES = [
    ("get", "dashboard_key_edit", "key", {}),
    ("post", "dashboard_key_edit", "key", {"name": "pwned", "profile": "{own_profile}"}),
    ("post", "dashboard_key_revoke", "key", {}),
    ("get", "dashboard_profile_edit", "profile", {}),
    ("post", "dashboard_profile_edit", "profile", {"name": "pwned", "strategy": "market-only"}),
    ("post", "dashboard_profile_delete", "profile", {}),
]

API_CASES = [
    ("get", "api_key_detail", "key", None),
    ("post", "api_key_revoke", "key", None),
    ("get", "api_profile_detail", "profile", None),
    ("patch", "api_profile_update", "profile", {"name": "pwned"}),
    ("delete", "api_profile_delete", "profile", None),
]


@pytest.mark.parametrize(("method", "name", "kind", "data"), PAGE_CASES)
def test_dashboard_pages_answer_404_for_another_users_objects(
    buyer_client, buyer, victim_objects, method, name, kind, data
):
    own_profile = services.routing_profile_default(user=buyer).id
    payload = {k: (own_profile if v == "{own_profile}" else v) for k, v in data.items()}
    before = _state()
    url = reverse(name, args=[victim_objects[kind]])
    response = getattr(buyer_client, method)(url, payload)
    assert response.status_code == 404
    assert _state() == before


@pytest.mark.parametrize(("method", "name", "kind", "data"), API_CASES)
def test_api_answers_404_for_another_users_objects(
    buyer_client, victim_objects, method, name, kind, data
):
    before = _state()
    url = reverse(name, args=[victim_objects[kind]])
    kwargs = {"content_type": "application/json"}
    if data is not None:
        kwargs["data"] = json.dumps(data)
    response = getattr(buyer_client, method)(url, **kwargs)
    assert response.status_code == 404
    assert _state() == before


def test_a_key_cannot_be_bound_to_another_users_profile(buyer_client, victim_objects):
    before = _state()
    page = buyer_client.post(
        reverse("dashboard_keys"), {"name": "sneaky", "profile": victim_objects["profile"]}
    )
    assert page.status_code == 400
    assert page.context["form"].errors["profile"] == [
        "Select a valid choice. That choice is not one of the available choices."
    ]
    api = buyer_client.post(
        reverse("api_key_create"),
        data=json.dumps({"name": "sneaky", "profile_id": victim_objects["profile"]}),
        content_type="application/json",
    )
    assert api.status_code == 400
    assert api.json() == {"profile_id": ["Choose one of your routing profiles."]}
    assert _state() == before


def test_lists_show_only_the_users_own_objects(buyer_client, buyer, victim_objects):
    keys = buyer_client.get(reverse("api_key_list")).json()
    profiles = buyer_client.get(reverse("api_profile_list")).json()
    assert keys == []
    assert [p["name"] for p in profiles] == ["Default"]
    page = buyer_client.get(reverse("dashboard_keys"))
    assert b"their-key" not in page.content
    page = buyer_client.get(reverse("dashboard_profiles"))
    assert b"Theirs" not in page.content


def test_anonymous_visitors_are_sent_to_login_or_refused(client, victim_objects):
    page = client.get(reverse("dashboard_keys"))
    assert page.status_code == 302
    assert page["Location"].startswith(reverse("account_login"))
    refused = client.get(reverse("api_key_list"))
    assert refused.status_code == 401
    assert refused["WWW-Authenticate"] == 'Bearer realm="api"'
