"""The dashboard's API tokens page (create once, list, revoke) and the operators' token admin."""

import pytest
from django.test import Client
from django.urls import reverse

from accounts import keys, tokens_services
from accounts.models import PersonalToken
from tests.operators import operator_client as signed_in_operator


def test_the_page_creates_a_token_and_shows_its_secret_only_in_that_answer(buyer_client, buyer):
    response = buyer_client.post(
        reverse("dashboard_tokens"),
        {"name": "deploy bot", "scopes": ["read", "keys:write"], "expires": "30"},
    )
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    secret = response.context["new_secret"]
    token = PersonalToken.objects.get()
    assert (token.user, token.name, token.scopes) == (buyer, "deploy bot", ["read", "keys:write"])
    assert token.token_hash == keys.key_hash(secret)
    assert 29 <= (token.expires_at - token.created_at).days <= 30
    html = response.content.decode()
    assert f'<code id="new-token-secret">{secret}</code>' in html
    assert 'id="copy-key"' in html

    again = buyer_client.get(reverse("dashboard_tokens")).content.decode()
    assert secret not in again
    assert token.prefix in again and "deploy bot" in again and "keys:write" in again


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"name": "x"}, "scopes", "Choose at least one scope."),
        ({"name": "x", "scopes": ["admin"]}, "scopes", "Select a valid choice."),
        ({"name": "", "scopes": ["read"]}, "name", "This field is required."),
        ({"name": "x", "scopes": ["read"], "expires": "9999"}, "expires", "Select a valid choice."),
    ],
)
def test_the_page_refuses_bad_input_with_field_errors(buyer_client, data, field, message):
    response = buyer_client.post(reverse("dashboard_tokens"), data)
    assert response.status_code == 400
    assert message in " ".join(response.context["form"].errors[field])
    assert PersonalToken.objects.count() == 0


def test_a_duplicate_live_name_is_a_field_error(buyer_client, buyer):
    tokens_services.personal_token_create(user=buyer, name="ci", scopes=["read"])
    response = buyer_client.post(reverse("dashboard_tokens"), {"name": "ci", "scopes": ["read"]})
    assert response.status_code == 400
    assert response.context["form"].errors["name"] == [
        "You already have a live token with this name."
    ]
    assert PersonalToken.objects.count() == 1


def test_revoking_needs_a_post_and_works_with_htmx(buyer_client, buyer):
    token, _ = tokens_services.personal_token_create(user=buyer, name="ci", scopes=["read"])
    url = reverse("dashboard_token_revoke", args=[token.id])
    assert buyer_client.get(url).status_code == 405
    response = buyer_client.post(url, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert "revoked" in response.content.decode()
    token.refresh_from_db()
    assert token.revoked_at is not None


def test_revoking_needs_the_csrf_token(buyer):
    token, _ = tokens_services.personal_token_create(user=buyer, name="ci", scopes=["read"])
    client = Client(enforce_csrf_checks=True)
    client.force_login(buyer)
    assert client.post(reverse("dashboard_token_revoke", args=[token.id])).status_code == 403
    token.refresh_from_db()
    assert token.revoked_at is None


def test_another_users_token_cannot_be_seen_or_revoked(buyer_client, other):
    token, _ = tokens_services.personal_token_create(user=other, name="theirs", scopes=["read"])
    url = reverse("dashboard_token_revoke", args=[token.id])
    assert buyer_client.post(url).status_code == 404
    token.refresh_from_db()
    assert token.revoked_at is None
    assert "theirs" not in buyer_client.get(reverse("dashboard_tokens")).content.decode()


def test_the_dashboard_links_the_tokens_page_and_the_api_docs(buyer_client):
    html = buyer_client.get(reverse("dashboard")).content.decode()
    assert f'href="{reverse("dashboard_tokens")}"' in html
    assert f'href="{reverse("api_docs")}"' in html
    docs = buyer_client.get(reverse("api_docs")).content.decode()
    assert "Authorization: Bearer df-pat-" in docs


def test_the_schema_names_the_personal_token_scheme(buyer_client):
    schema = buyer_client.get(reverse("api_schema") + "?format=json").json()
    scheme = schema["components"]["securitySchemes"]["personalToken"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    security = schema["paths"]["/api/keys/"]["get"]["security"]
    assert {"personalToken": []} in security


@pytest.fixture
def operator(client, make_user):
    user = make_user("ops@example.com")
    user.is_staff = user.is_superuser = True
    user.save()
    return signed_in_operator(user, client)


def test_operators_see_tokens_without_secret_or_hash_and_can_revoke(operator, buyer):
    token, secret = tokens_services.personal_token_create(
        user=buyer, name="leaky", scopes=["read", "profiles:write"]
    )
    changelist = reverse("admin:accounts_personaltoken_changelist")
    for url in (changelist, reverse("admin:accounts_personaltoken_change", args=[token.id])):
        page = operator.get(url)
        assert page.status_code == 200
        html = page.content.decode()
        assert token.prefix in html
        assert secret not in html and secret[15:] not in html and token.token_hash not in html
    assert operator.get(reverse("admin:accounts_personaltoken_add")).status_code == 403
    response = operator.post(changelist, {"action": "revoke", "_selected_action": [token.id]})
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
