import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from accounts import selectors, services
from accounts.models import AccessKey, Plan

USD = 1_000_000_000


def test_the_migration_creates_the_four_plans_of_the_api_contract(db):
    rows = list(
        Plan.objects.order_by("rank").values_list(
            "slug",
            "requests_per_minute",
            "tokens_per_minute",
            "min_lifetime_topup_nusd",
            "min_lifetime_spend_nusd",
            "automatic",
        )
    )
    assert rows == [
        ("free", 10, 40_000, 0, 0, True),
        ("starter", 60, 200_000, 10 * USD, 5 * USD, True),
        ("pro", 300, 1_000_000, 100 * USD, 50 * USD, True),
        ("enterprise", None, None, 0, 0, False),
    ]


def test_the_plan_follows_lifetime_top_ups(buyer, topup):
    assert selectors.user_plan(user=buyer).slug == "free"
    topup(buyer, 500)
    assert selectors.user_plan(user=buyer).slug == "free"
    topup(buyer, 500)  # $10.00 in total
    assert selectors.user_plan(user=buyer).slug == "starter"
    topup(buyer, 8999)  # $99.99
    assert selectors.user_plan(user=buyer).slug == "starter"
    topup(buyer, 501)  # $105.00
    assert selectors.user_plan(user=buyer).slug == "pro"


def test_enterprise_comes_only_from_an_operator_override(buyer, topup):
    topup(buyer, 100_000)  # $1,000
    assert selectors.user_plan(user=buyer).slug == "pro"
    buyer.plan_override = Plan.objects.get(slug="enterprise")
    buyer.save()
    assert selectors.user_plan(user=buyer).slug == "enterprise"
    record = selectors.plan_status(user=buyer)
    assert (record.overridden, record.next_plan) == (True, None)


def test_an_operator_can_move_a_threshold(buyer, topup):
    Plan.objects.filter(slug="starter").update(min_lifetime_topup_nusd=5 * USD)
    topup(buyer, 500)
    assert selectors.user_plan(user=buyer).slug == "starter"


def test_the_dashboard_shows_the_plan_its_limits_and_what_unlocks_the_next(
    buyer_client, buyer, topup
):
    topup(buyer, 700)
    page = buyer_client.get(reverse("dashboard"))
    assert page.status_code == 200
    assert b'id="plan">Free<' in page.content
    assert b"10 requests/min" in page.content
    assert b"40,000 tokens/min" in page.content
    assert (
        b"Starter (60 rpm) unlocks with $3.00 more in top-ups or $5.00 more in spend."
        in page.content
    )
    assert b"So far: $7.00 topped up, $0.00 spent." in page.content


def test_a_higher_plan_lifts_the_key_throttle_ceiling(buyer, topup):
    with pytest.raises(ValidationError):
        services.access_key_create(user=buyer, name="k", requests_per_minute=60)
    assert AccessKey.objects.count() == 0
    topup(buyer, 1000)
    key, _ = services.access_key_create(user=buyer, name="k", requests_per_minute=60)
    assert key.requests_per_minute == 60
