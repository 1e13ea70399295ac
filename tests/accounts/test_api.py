import json
import re

from django.test import Client
from django.urls import reverse

from accounts import keys, services
from accounts.models import AccessKey, RoutingProfile


def _post(client, name, data, *args):
    return client.post(
        reverse(name, args=args), data=json.dumps(data), content_type="application/json"
    )


def test_the_account_summary_reports_verification_plan_and_wallet(buyer_client, buyer):
    data = buyer_client.get(reverse("api_account")).json()
    assert data == {
        "email": "buyer@example.com",
        "email_verified": True,
        "buyer_terms_accepted": False,
        "plan": {
            "slug": "free",
            "name": "Free",
            "requests_per_minute": 10,
            "tokens_per_minute": 40000,
        },
        "next_plan": {
            "slug": "starter",
            "name": "Starter",
            "requests_per_minute": 60,
            "tokens_per_minute": 200000,
            "missing_topups_nusd": 10_000_000_000,
            "missing_spend_nusd": 5_000_000_000,
        },
        "balance_nusd": 0,
        "held_nusd": 0,
        "available_nusd": 0,
        "spent_this_month_nusd": 0,
        "lifetime_topups_nusd": 0,
    }


def test_the_api_creates_a_key_once_and_ignores_fields_a_user_must_not_set(
    buyer_client, buyer, other
):
    response = _post(
        buyer_client,
        "api_key_create",
        {
            "name": "api",
            "spend_limit_usd": "2.5",
            "user": other.id,
            "user_id": other.id,
            "key_hash": "0" * 64,
            "revoked_at": None,
            "balance_nusd": 10**12,
            "plan": "enterprise",
            "verified": True,
        },
    )
    assert response.status_code == 201
    body = response.json()
    secret = body["secret"]
    key = AccessKey.objects.get()
    assert (key.user, key.key_hash, key.spend_limit_nusd) == (
        buyer,
        keys.key_hash(secret),
        2_500_000_000,
    )
    assert body["prefix"] == key.prefix
    assert "secret" not in buyer_client.get(reverse("api_key_detail", args=[key.id])).json()
    assert buyer.plan_override is None


def test_the_api_refuses_key_creation_before_verification(client, make_user):
    user = make_user("fresh@example.com", verified=False)
    client.force_login(user)
    response = _post(client, "api_key_create", {"name": "k"})
    assert response.status_code == 403
    assert response.json() == {"detail": "Verify your email address to create access keys."}
    assert AccessKey.objects.count() == 0


def test_the_api_gives_field_level_messages(buyer_client, buyer, providers):
    response = _post(
        buyer_client,
        "api_key_create",
        {"name": "k", "requests_per_minute": 11, "spend_limit_usd": "-3"},
    )
    assert response.status_code == 400
    assert response.json() == {"spend_limit_usd": ["Spend limit: Amounts cannot be negative."]}
    response = _post(buyer_client, "api_key_create", {"name": "k", "requests_per_minute": 11})
    assert response.json() == {"requests_per_minute": ["Your Free plan allows at most 10."]}

    before = list(RoutingProfile.objects.values().order_by("id"))
    response = _post(
        buyer_client,
        "api_profile_create",
        {
            "name": "Default",
            "max_input_price_usd": "abc",
            "provider_only": ["deepseek", "ghost"],
            "model_aliases": {"x": "no/model"},
        },
    )
    assert response.status_code == 400
    assert response.json() == {
        "max_input_price_usd": ["Max input price: 'abc' is not a dollar amount."],
        "provider_only": ["Unknown provider: ghost."],
        "model_aliases": ["no/model is not a model in the catalogue."],
    }
    response = _post(buyer_client, "api_profile_create", {"name": "Default"})
    assert response.json() == {"name": ["You already have a profile with this name."]}
    assert list(RoutingProfile.objects.values().order_by("id")) == before


def test_the_api_manages_profiles_and_revokes_keys(buyer_client, buyer, providers):
    created = _post(
        buyer_client,
        "api_profile_create",
        {"name": "Cheap", "max_input_price_usd": "0.3", "provider_order": ["minimax", "deepseek"]},
    )
    assert created.status_code == 201
    profile_id = created.json()["id"]
    assert created.json()["max_input_price_nusd"] == 300_000_000

    patched = buyer_client.patch(
        reverse("api_profile_update", args=[profile_id]),
        data=json.dumps({"hard_max_ttft_ms": 1500, "user": 999}),
        content_type="application/json",
    )
    assert patched.status_code == 200
    assert patched.json()["hard_max_ttft_ms"] == 1500
    assert patched.json()["max_input_price_nusd"] == 300_000_000
    assert RoutingProfile.objects.get(id=profile_id).user == buyer

    key, _ = services.access_key_create(user=buyer, name="k")
    revoked = _post(buyer_client, "api_key_revoke", {}, key.id)
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None

    deleted = buyer_client.delete(reverse("api_profile_delete", args=[profile_id]))
    assert deleted.status_code == 204
    assert not RoutingProfile.objects.filter(id=profile_id).exists()


def test_the_api_enforces_csrf_on_session_writes(buyer):
    client = Client(enforce_csrf_checks=True)
    client.force_login(buyer)
    response = _post(client, "api_key_create", {"name": "k"})
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    assert AccessKey.objects.count() == 0


def test_the_schema_and_docs_page_describe_the_api_without_a_cdn(buyer_client):
    schema = buyer_client.get(reverse("api_schema") + "?format=json")
    assert schema.status_code == 200
    paths = json.loads(schema.content)["paths"]
    assert {"/api/keys/", "/api/keys/create/", "/api/profiles/{profile_id}/update/"} <= set(paths)
    docs = buyer_client.get(reverse("api_docs"))
    assert docs.status_code == 200
    assert b"/api/keys/create/" in docs.content
    html = docs.content.decode()
    # (Not inside the random CSRF token, which spells "cdn" about once in 60 pages.)
    assert "cdn" not in re.sub(r'name="csrfmiddlewaretoken" value="[^"]*"', "", html).lower()
    # Every script, stylesheet, image and link is served by us: no absolute or protocol-relative URL.
    references = re.findall(r"""(?:src|href|action)\s*=\s*["']([^"']*)["']""", html)
    assert references
    external = [
        ref for ref in references if not ref.startswith(("/", "#", "?")) or ref.startswith("//")
    ]
    assert external == []
    assert "@import" not in html and "url(http" not in html


def test_the_api_refuses_numbers_out_of_range_with_field_messages(buyer_client, buyer):
    before = (
        list(AccessKey.objects.values().order_by("id")),
        list(RoutingProfile.objects.values().order_by("id")),
    )
    key = _post(buyer_client, "api_key_create", {"name": "k", "tokens_per_minute": 10**11})
    assert key.status_code == 400
    assert key.json() == {
        "tokens_per_minute": ["Ensure this value is less than or equal to 1000000000."]
    }
    profile = _post(
        buyer_client,
        "api_profile_create",
        {"name": "p", "hard_min_tps": 10**11, "soft_max_ttft_ms": 0},
    )
    assert profile.status_code == 400
    assert profile.json() == {
        "soft_max_ttft_ms": ["Ensure this value is greater than or equal to 1."],
        "hard_min_tps": ["Ensure this value is less than or equal to 1000000."],
    }
    assert (
        list(AccessKey.objects.values().order_by("id")),
        list(RoutingProfile.objects.values().order_by("id")),
    ) == before


def test_the_api_turns_a_profiles_strict_model_names_on(buyer_client, buyer, providers):
    created = _post(buyer_client, "api_profile_create", {"name": "Strict", "strict_models": True})
    assert created.status_code == 201
    assert created.json()["strict_models"] is True
    assert RoutingProfile.objects.get(id=created.json()["id"]).strict_models is True
    patched = buyer_client.patch(
        reverse("api_profile_update", args=[created.json()["id"]]),
        data=json.dumps({"strict_models": False}),
        content_type="application/json",
    )
    assert patched.status_code == 200
    assert patched.json()["strict_models"] is False
