import re

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from accounts import services
from accounts.models import RoutingProfile


def _form(**overrides):
    data = {"name": "Fast", "strategy": "market-only", "privacy_mode": ""}
    data.update(overrides)
    return data


def _snapshot(user):
    return list(RoutingProfile.objects.filter(user=user).values().order_by("id"))


def test_every_user_gets_a_default_profile(make_user):
    user = make_user()
    assert [p.name for p in RoutingProfile.objects.filter(user=user)] == ["Default"]
    assert services.routing_profile_default(user=user).strategy == "market-only"


def test_it_creates_a_profile_with_prices_in_usd_stored_in_nano_usd(buyer_client, buyer, providers):
    response = buyer_client.post(
        reverse("dashboard_profile_create"),
        _form(
            max_input_price_usd="0.45",
            max_output_price_usd="1.2",
            soft_max_ttft_ms="800",
            hard_max_ttft_ms="3000",
            soft_min_tps="50",
            hard_min_tps="10",
            privacy_mode="trusted_only",
            provider_only="DeepSeek, minimax",
            provider_ignore="",
            provider_order="minimax,deepseek",
            aliases_enabled="on",
            model_aliases="gpt-4o = deepseek/deepseek-chat",
            default_model="deepseek/deepseek-chat",
        ),
    )
    assert response.status_code == 302
    profile = RoutingProfile.objects.get(user=buyer, name="Fast")
    assert profile.max_input_price_nusd == 450_000_000
    assert profile.max_output_price_nusd == 1_200_000_000
    assert (profile.soft_max_ttft_ms, profile.hard_max_ttft_ms) == (800, 3000)
    assert (profile.soft_min_tps, profile.hard_min_tps) == (50, 10)
    assert profile.privacy_mode == "trusted_only"
    assert profile.provider_only == ["deepseek", "minimax"]
    assert profile.provider_order == ["minimax", "deepseek"]
    assert profile.aliases_enabled is True
    assert profile.model_aliases == {"gpt-4o": "deepseek/deepseek-chat"}
    assert profile.default_model == "deepseek/deepseek-chat"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("provider_only", "deepseek, nosuch", "Unknown provider: nosuch."),
        ("provider_ignore", "Not A Slug!", "Not a provider slug: not a slug!."),
        ("provider_order", "deepseek,deepseek", "Each provider may appear once."),
        ("max_input_price_usd", "-0.5", "Max input price: Amounts cannot be negative."),
        ("max_output_price_usd", "cheap", "Max output price: 'cheap' is not a dollar amount."),
        ("hard_max_ttft_ms", "-5", "Ensure this value is greater than or equal to 1."),
        ("soft_min_tps", "fast", "Enter a whole number."),
        ("hard_max_ttft_ms", "99999999999", "Ensure this value is less than or equal to 600000."),
        ("hard_min_tps", "99999999999", "Ensure this value is less than or equal to 1000000."),
        (
            "model_aliases",
            "gpt-4o = no/such-model",
            "no/such-model is not a model in the catalogue.",
        ),
        ("model_aliases", "just-a-name", "Line 1: write it as `name = model id`."),
        ("default_model", "gpt-4o", "gpt-4o is not a model in the catalogue."),
        (
            "strategy",
            "cheapest",
            "Select a valid choice. cheapest is not one of the available choices.",
        ),
    ],
)
def test_it_refuses_bad_profile_fields_with_field_messages(
    buyer_client, buyer, providers, field, value, message
):
    before = _snapshot(buyer)
    response = buyer_client.post(reverse("dashboard_profile_create"), _form(**{field: value}))
    assert response.status_code == 400
    assert response.context["form"].errors[field] == [message]
    assert _snapshot(buyer) == before


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        (
            {"soft_max_ttft_ms": "5000", "hard_max_ttft_ms": "1000"},
            "soft_max_ttft_ms",
            "The preferred TTFT cannot be above the hard maximum.",
        ),
        (
            {"soft_min_tps": "10", "hard_min_tps": "50"},
            "soft_min_tps",
            "The preferred throughput cannot be below the hard minimum.",
        ),
        (
            {"provider_only": "deepseek, minimax", "provider_ignore": "minimax"},
            "provider_ignore",
            "minimax cannot be both allowed and ignored.",
        ),
    ],
)
def test_it_refuses_contradictory_profile_fields(
    buyer_client, buyer, providers, overrides, field, message
):
    before = _snapshot(buyer)
    response = buyer_client.post(reverse("dashboard_profile_create"), _form(**overrides))
    assert response.status_code == 400
    assert response.context["form"].errors[field] == [message]
    assert _snapshot(buyer) == before


def test_the_service_refuses_numbers_the_database_cannot_hold(buyer):
    before = _snapshot(buyer)
    with pytest.raises(ValidationError) as refused:
        services.routing_profile_create(user=buyer, name="Huge", soft_max_ttft_ms=10**11)
    assert refused.value.message_dict == {
        "soft_max_ttft_ms": ["Give a whole number from 1 to 600,000."]
    }
    assert _snapshot(buyer) == before


def test_it_refuses_a_duplicate_profile_name(buyer_client, buyer):
    before = _snapshot(buyer)
    response = buyer_client.post(reverse("dashboard_profile_create"), _form(name="Default"))
    assert response.status_code == 400
    assert response.context["form"].errors["name"] == ["You already have a profile with this name."]
    assert _snapshot(buyer) == before


def test_editing_a_profile_saves_changes(buyer_client, buyer, providers):
    profile = services.routing_profile_create(user=buyer, name="Edit")
    response = buyer_client.post(
        reverse("dashboard_profile_edit", args=[profile.id]),
        _form(name="Edited", provider_ignore="minimax", max_input_price_usd="2"),
    )
    assert response.status_code == 302
    profile.refresh_from_db()
    assert (profile.name, profile.provider_ignore, profile.max_input_price_nusd) == (
        "Edited",
        ["minimax"],
        2_000_000_000,
    )


def test_it_refuses_to_delete_the_default_profile_or_one_with_live_keys(buyer_client, buyer):
    default = services.routing_profile_default(user=buyer)
    other = services.routing_profile_create(user=buyer, name="Used")
    services.access_key_create(user=buyer, name="k", profile=other)
    before = _snapshot(buyer)
    buyer_client.post(reverse("dashboard_profile_delete", args=[default.id]))
    buyer_client.post(reverse("dashboard_profile_delete", args=[other.id]))
    assert _snapshot(buyer) == before


def test_deleting_a_profile_moves_its_revoked_keys_to_default(buyer_client, buyer):
    spare = services.routing_profile_create(user=buyer, name="Spare")
    key, _ = services.access_key_create(user=buyer, name="old", profile=spare)
    services.access_key_revoke(key=key)
    response = buyer_client.post(reverse("dashboard_profile_delete", args=[spare.id]))
    assert response.status_code == 302
    assert not RoutingProfile.objects.filter(id=spare.id).exists()
    key.refresh_from_db()
    assert key.profile == services.routing_profile_default(user=buyer)


def test_a_profile_can_be_made_strict_in_the_dashboard_and_back(buyer_client, buyer, providers):
    response = buyer_client.post(reverse("dashboard_profile_create"), _form(strict_models="on"))
    assert response.status_code == 302
    profile = RoutingProfile.objects.get(user=buyer, name="Fast")
    assert profile.strict_models is True
    page = buyer_client.get(reverse("dashboard_profile_edit", args=[profile.id]))
    assert b"Strict model names" in page.content
    assert re.search(rb'<input[^>]*name="strict_models"[^>]*checked', page.content)
    response = buyer_client.post(reverse("dashboard_profile_edit", args=[profile.id]), _form())
    assert response.status_code == 302
    profile.refresh_from_db()
    assert profile.strict_models is False
    assert (
        b"strict"
        not in buyer_client.get(reverse("dashboard_profiles")).content.split(b"<tbody>")[1]
    )
