"""Numbers typed into the routing-profile and key forms, sent to the management API or put in a
URL: a huge exponent, a huge digit string or a foreign digit is a field error at once (it took
34 s, or answered 500, before bounded_numbers/parse.py), and nothing changes."""

import json
import time

import pytest
from django.urls import reverse

from accounts import services
from accounts.models import AccessKey, RoutingProfile

PROFILE_FIELDS = [
    ("max_input_price_usd", "1e999990", "Max input price: That amount is too large."),
    ("max_input_price_usd", "1e999999", "Max input price: That amount is too large."),
    ("max_output_price_usd", "-1e999999", "Max output price: Amounts cannot be negative."),
    ("max_input_price_usd", "9" * 10_000, "Max input price: An amount has at most 40 characters."),
    ("max_input_price_usd", "100000.000000001", "Max input price: at most $100,000.00."),
    ("max_input_price_usd", "١٢٣", "Max input price: '١٢٣' is not a dollar amount."),
    ("hard_max_ttft_ms", "1e999990", "Ensure this value is less than or equal to 600000."),
    ("soft_max_ttft_ms", "1e999999", "Ensure this value is less than or equal to 600000."),
    ("hard_min_tps", "-1e999990", "Ensure this value is greater than or equal to 1."),
    ("soft_min_tps", "1_000", "Enter a whole number."),
]


def _rows(user):
    return list(RoutingProfile.objects.filter(user=user).values().order_by("id"))


def _profile(user):
    return services.routing_profile_create(
        user=user, name="Cheap", max_input_price_nusd=300_000_000, hard_max_ttft_ms=900
    )


@pytest.mark.parametrize(("field", "value", "message"), PROFILE_FIELDS)
def test_the_profile_form_refuses_unbounded_numbers_quickly_and_changes_nothing(
    buyer_client, buyer, providers, field, value, message
):
    profile = _profile(buyer)
    before = _rows(buyer)
    started = time.perf_counter()
    response = buyer_client.post(
        reverse("dashboard_profile_edit", args=[profile.id]),
        {"name": "Cheap", "strategy": "market-only", "privacy_mode": "", field: value},
    )
    assert time.perf_counter() - started < 1.0
    assert response.status_code == 400
    assert response.context["form"].errors[field] == [message]
    assert _rows(buyer) == before


@pytest.mark.parametrize(("field", "value", "message"), PROFILE_FIELDS)
def test_the_profile_api_refuses_unbounded_numbers_quickly_and_changes_nothing(
    buyer_client, buyer, providers, field, value, message
):
    profile = _profile(buyer)
    before = _rows(buyer)
    if message.startswith("Ensure") or message.startswith("Enter"):  # DRF's words for the same
        message = message.replace("Enter a whole number.", "A valid integer is required.")
    started = time.perf_counter()
    response = buyer_client.patch(
        reverse("api_profile_update", args=[profile.id]),
        data=json.dumps({field: value}),
        content_type="application/json",
    )
    assert time.perf_counter() - started < 1.0
    assert response.status_code == 400
    assert response.json() == {field: [message]}
    assert _rows(buyer) == before


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("spend_limit_usd", "1e999990", "Spend limit: That amount is too large."),
        ("spend_limit_usd", "1e999999", "Spend limit: That amount is too large."),
        (
            "requests_per_minute",
            "1e999999",
            "Ensure this value is less than or equal to 1000000000.",
        ),
        ("tokens_per_minute", "\u0665", "Enter a whole number."),  # Arabic-Indic 5
    ],
)
def test_the_key_form_and_api_refuse_unbounded_numbers(buyer_client, buyer, field, value, message):
    profile = services.routing_profile_default(user=buyer)
    response = buyer_client.post(
        reverse("dashboard_keys"), {"name": "k", "profile": profile.id, field: value}
    )
    assert response.status_code == 400
    assert response.context["form"].errors[field] == [message]
    api = buyer_client.post(
        reverse("api_key_create"),
        data=json.dumps({"name": "k", field: value}),
        content_type="application/json",
    )
    assert api.status_code == 400
    assert api.json() == {
        field: [message.replace("Enter a whole number.", "A valid integer is required.")]
    }
    assert AccessKey.objects.count() == 0


def test_ids_and_json_numbers_are_bounded_too(buyer_client, buyer, providers):
    profile = _profile(buyer)
    before = (list(AccessKey.objects.values()), _rows(buyer))
    for name in ("dashboard_profile_edit", "api_profile_detail", "api_key_detail"):
        for number in (10**30, int("9" * 4000)):  # [0-9]+ in the URL; Django's lookups: a 404
            path = reverse(name, args=[1]).replace("/1/", f"/{number}/")
            assert buyer_client.get(path).status_code == 404, (name, len(str(number)))
    for url, body, errors in (
        (
            reverse("api_key_create"),
            '{"name": "k", "profile_id": "1_000"}',
            {"profile_id": ["A valid integer is required."]},
        ),
        (
            reverse("api_profile_update", args=[profile.id]),
            '{"soft_max_ttft_ms": "\u0661\u0662\u0663"}',
            {"soft_max_ttft_ms": ["A valid integer is required."]},
        ),
        (
            reverse("api_profile_update", args=[profile.id]),
            '{"max_input_price_usd": 1e999990}',  # a JSON number: inf once parsed
            {"max_input_price_usd": ["Max input price: Amounts must be finite numbers."]},
        ),
    ):
        method = buyer_client.post if url.endswith("/create/") else buyer_client.patch
        response = method(url, data=body, content_type="application/json")
        assert (response.status_code, response.json()) == (400, errors), body
    assert (list(AccessKey.objects.values()), _rows(buyer)) == before
