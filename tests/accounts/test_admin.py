"""Operators' admin pages for users, plans, profiles, keys and acceptances: they work, and never show
a key's secret or hash."""

import pytest
from django.urls import reverse

from accounts import services
from accounts.models import AccessKey, Plan
from tests.operators import operator_client as signed_in_operator

USD = 1_000_000_000


@pytest.fixture
def operator_client(client, make_user):
    operator = make_user("ops@example.com")
    operator.is_staff = operator.is_superuser = True
    operator.save()
    return signed_in_operator(operator, client)


def test_the_key_admin_never_shows_the_secret_or_its_hash(operator_client, buyer):
    key, secret = services.access_key_create(user=buyer, name="prod")
    pages = [
        operator_client.get(reverse("admin:accounts_accesskey_changelist")),
        operator_client.get(reverse("admin:accounts_accesskey_change", args=[key.id])),
        operator_client.get(reverse("admin:accounts_accesskey_changelist") + "?q=prod"),
    ]
    for page in pages:
        assert page.status_code == 200
        html = page.content.decode()
        assert key.prefix in html
        assert secret not in html
        assert secret[len(key.prefix) :] not in html
        assert key.key_hash not in html
    assert operator_client.get(reverse("admin:accounts_accesskey_add")).status_code == 403


def test_the_key_admin_revokes_through_the_service(operator_client, buyer):
    key, _ = services.access_key_create(user=buyer, name="leaked")
    response = operator_client.post(
        reverse("admin:accounts_accesskey_changelist"),
        {"action": "revoke", "_selected_action": [key.id]},
    )
    assert response.status_code == 302
    key.refresh_from_db()
    assert key.revoked_at is not None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("-1", "Threshold: Amounts cannot be negative."),
        ("ten", "Threshold: 'ten' is not a dollar amount."),
    ],
)
def test_the_plan_admin_refuses_a_bad_threshold(operator_client, value, message):
    starter = Plan.objects.get(slug="starter")
    response = operator_client.post(
        reverse("admin:accounts_plan_change", args=[starter.id]),
        {"slug": "starter", "name": "Starter", "rank": starter.rank, "threshold_usd": value},
    )
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["threshold_usd"] == [message]
    starter.refresh_from_db()
    assert starter.min_lifetime_topup_nusd == 10 * USD


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("-0.01", "Spend threshold: Amounts cannot be negative."),
        ("5$", "Spend threshold: '5$' is not a dollar amount."),
        ("", "This field is required."),
    ],
)
def test_the_plan_admin_refuses_a_bad_spend_threshold(operator_client, value, message):
    starter = Plan.objects.get(slug="starter")
    response = operator_client.post(
        reverse("admin:accounts_plan_change", args=[starter.id]),
        {
            "slug": "starter",
            "name": "Starter",
            "rank": starter.rank,
            "threshold_usd": "1",
            "spend_threshold_usd": value,
            "automatic": "on",
        },
    )
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["spend_threshold_usd"] == [message]
    starter.refresh_from_db()
    assert (starter.min_lifetime_topup_nusd, starter.min_lifetime_spend_nusd) == (
        10 * USD,
        5 * USD,
    )


def test_the_plan_admin_shows_both_thresholds_in_dollars(operator_client):
    pro = Plan.objects.get(slug="pro")
    form = (
        operator_client.get(reverse("admin:accounts_plan_change", args=[pro.id]))
        .context["adminform"]
        .form
    )
    assert (form.initial["threshold_usd"], form.initial["spend_threshold_usd"]) == ("100", "50")


def test_an_operator_sets_a_plan_threshold_and_an_override(operator_client, buyer, topup):
    starter = Plan.objects.get(slug="starter")
    response = operator_client.post(
        reverse("admin:accounts_plan_change", args=[starter.id]),
        {
            "slug": "starter",
            "name": "Starter",
            "rank": starter.rank,
            "requests_per_minute": 60,
            "tokens_per_minute": 200_000,
            "threshold_usd": "5.00",
            "spend_threshold_usd": "2.5",
            "automatic": "on",
        },
    )
    assert response.status_code == 302
    starter.refresh_from_db()
    assert starter.min_lifetime_topup_nusd == 5 * USD
    assert starter.min_lifetime_spend_nusd == 2_500_000_000
    listing = operator_client.get(reverse("admin:accounts_plan_changelist")).content.decode()
    assert "$5.00" in listing and "$100.00" in listing
    assert "$2.50" in listing and "$50.00" in listing
    topup(buyer, 500)
    from accounts import selectors

    assert selectors.user_plan(user=buyer).slug == "starter"

    pro = Plan.objects.get(slug="pro")
    page = operator_client.get(reverse("admin:accounts_user_change", args=[buyer.id]))
    assert page.status_code == 200
    form = page.context["adminform"].form
    data = {name: form.initial.get(name) or "" for name in form.fields}
    data.update({"email": buyer.email, "plan_override": pro.id, "is_active": "on"})
    data.pop("password", None)
    data.pop("groups", None)
    data.pop("email_canonical", None)
    saved = operator_client.post(reverse("admin:accounts_user_change", args=[buyer.id]), data)
    assert saved.status_code == 302, saved.context["adminform"].form.errors
    buyer.refresh_from_db()
    assert selectors.user_plan(user=buyer).slug == "pro"


def test_the_other_accounts_admin_pages_load(operator_client, buyer):
    services.access_key_create(user=buyer, name="k")
    for name in (
        "admin:accounts_user_changelist",
        "admin:accounts_plan_changelist",
        "admin:accounts_routingprofile_changelist",
        "admin:accounts_accesskey_changelist",
        "admin:market_termsacceptance_changelist",
    ):
        assert operator_client.get(reverse(name)).status_code == 200, name
    profile = services.routing_profile_default(user=buyer)
    page = operator_client.get(reverse("admin:accounts_routingprofile_change", args=[profile.id]))
    assert page.status_code == 200
    assert AccessKey.objects.get().key_hash not in page.content.decode()
