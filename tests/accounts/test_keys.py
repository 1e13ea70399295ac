import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from accounts import keys, selectors, services
from accounts.models import AccessKey


def test_it_refuses_key_creation_before_verification(client, make_user):
    user = make_user("unverified@example.com", verified=False)
    client.force_login(user)
    page = client.get(reverse("dashboard_keys"))
    assert page.status_code == 200
    assert b'id="keys-locked"' in page.content
    assert reverse("account_email").encode() in page.content

    response = client.post(
        reverse("dashboard_keys"),
        {"name": "k", "profile": services.routing_profile_default(user=user).id},
    )
    assert response.status_code == 403
    assert AccessKey.objects.count() == 0
    with pytest.raises(services.EmailNotVerified):
        services.access_key_create(user=user, name="k")
    assert AccessKey.objects.count() == 0


def test_a_new_key_is_shown_once_and_stored_hashed(buyer_client, buyer):
    profile = services.routing_profile_default(user=buyer)
    response = buyer_client.post(
        reverse("dashboard_keys"),
        {"name": "laptop", "profile": profile.id, "spend_limit_usd": "5.50"},
    )
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    secret = response.context["new_secret"]
    assert keys.key_is_well_formed(secret)
    assert secret.encode() in response.content

    key = AccessKey.objects.get()
    assert key.name == "laptop"
    assert key.profile == profile
    assert key.key_hash == keys.key_hash(secret)
    assert key.prefix == secret[:14]
    assert key.spend_limit_nusd == 5_500_000_000
    assert secret not in str(AccessKey.objects.values().get())

    again = buyer_client.get(reverse("dashboard_keys"))
    assert secret.encode() not in again.content
    assert key.prefix.encode() in again.content


def test_revocation_marks_the_key_and_the_auth_record(buyer_client, buyer):
    key, secret = services.access_key_create(user=buyer, name="ci")
    response = buyer_client.post(
        reverse("dashboard_key_revoke", args=[key.id]), HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    assert b"revoked" in response.content
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert selectors.access_key_auth_record(key_hash=keys.key_hash(secret))["revoked"] is True


def test_revoking_twice_keeps_the_first_time(buyer):
    key, _ = services.access_key_create(user=buyer, name="ci")
    first = services.access_key_revoke(key=key).revoked_at
    assert services.access_key_revoke(key=key).revoked_at == first


def test_it_refuses_throttles_above_the_plan(buyer_client, buyer):
    profile = services.routing_profile_default(user=buyer)
    response = buyer_client.post(
        reverse("dashboard_keys"),
        {
            "name": "big",
            "profile": profile.id,
            "requests_per_minute": 11,
            "tokens_per_minute": 40001,
        },
    )
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert errors["requests_per_minute"] == ["Your Free plan allows at most 10."]
    assert errors["tokens_per_minute"] == ["Your Free plan allows at most 40,000."]
    assert AccessKey.objects.count() == 0


def test_it_accepts_throttles_within_the_plan(buyer):
    key, _ = services.access_key_create(
        user=buyer, name="small", requests_per_minute=10, tokens_per_minute=40_000
    )
    assert (key.requests_per_minute, key.tokens_per_minute) == (10, 40_000)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("spend_limit_usd", "-1", "Spend limit: Amounts cannot be negative."),
        ("spend_limit_usd", "lots", "Spend limit: 'lots' is not a dollar amount."),
        ("spend_limit_usd", "0", "A spend limit must be above zero (leave it empty for none)."),
        ("requests_per_minute", "0", "Ensure this value is greater than or equal to 1."),
        ("requests_per_minute", "ten", "Enter a whole number."),
        (
            "tokens_per_minute",
            "99999999999",
            "Ensure this value is less than or equal to 1000000000.",
        ),
    ],
)
def test_it_refuses_bad_key_fields_with_field_messages(buyer_client, buyer, field, value, message):
    profile = services.routing_profile_default(user=buyer)
    data = {"name": "k", "profile": profile.id, field: value}
    response = buyer_client.post(reverse("dashboard_keys"), data)
    assert response.status_code == 400
    assert response.context["form"].errors[field] == [message]
    assert AccessKey.objects.count() == 0


def test_it_refuses_a_duplicate_live_key_name_but_allows_reuse_after_revocation(buyer):
    key, _ = services.access_key_create(user=buyer, name="prod")
    with pytest.raises(ValidationError) as refused:
        services.access_key_create(user=buyer, name="prod")
    assert refused.value.message_dict == {"name": ["You already have a live key with this name."]}
    assert AccessKey.objects.count() == 1
    services.access_key_revoke(key=key)
    services.access_key_create(user=buyer, name="prod")
    assert AccessKey.objects.filter(name="prod").count() == 2


def test_editing_a_key_changes_its_profile_and_throttles(buyer_client, buyer):
    key, _ = services.access_key_create(user=buyer, name="edit-me")
    batch = services.routing_profile_create(user=buyer, name="Batch")
    response = buyer_client.post(
        reverse("dashboard_key_edit", args=[key.id]),
        {"name": "edited", "profile": batch.id, "requests_per_minute": 5, "spend_limit_usd": ""},
    )
    assert response.status_code == 302
    key.refresh_from_db()
    assert (key.name, key.profile_id, key.requests_per_minute, key.spend_limit_nusd) == (
        "edited",
        batch.id,
        5,
        None,
    )


def test_touch_sets_last_used_at_most_once_a_minute(buyer):
    key, _ = services.access_key_create(user=buyer, name="t")
    services.access_key_touch(key_id=key.id)
    key.refresh_from_db()
    first = key.last_used_at
    assert first is not None
    assert (timezone.now() - first).total_seconds() < 5
    services.access_key_touch(key_id=key.id)
    key.refresh_from_db()
    assert key.last_used_at == first


def test_an_unlimited_plan_still_refuses_a_throttle_the_database_cannot_hold(buyer):
    from accounts.models import Plan

    buyer.plan_override = Plan.objects.get(slug="enterprise")
    buyer.save()
    with pytest.raises(ValidationError) as refused:
        services.access_key_create(user=buyer, name="big", requests_per_minute=10**11)
    assert refused.value.message_dict == {
        "requests_per_minute": ["A throttle can be at most 1,000,000,000."]
    }
    assert AccessKey.objects.count() == 0
    key, _ = services.access_key_create(user=buyer, name="big", requests_per_minute=5_000)
    assert key.requests_per_minute == 5_000
