"""Plans step by lifetime top-ups or lifetime spend, whichever is further along
(accounts.selectors.plan_status): spend comes from real settlements and refunds, the next step's
two figures are exact, an override wins, non-automatic plans are never reached, and the auth
record reads spend from the wallet row, never from the usage records."""

from importlib import import_module
from itertools import count

import pytest
from django.apps import apps
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts import keys, selectors, services
from accounts.models import Plan
from billing import services as billing_services
from billing.models import UsageRecord
from tests.accounts.factories import user_make
from tests.billing.factories import fund, settlement_make
from tests.market.factories import listing_row_make

USD = 1_000_000_000
_request_ids = count(1)


@pytest.fixture
def spend(db):
    """Settle a request costing exactly `nusd` for `user` through billing's real settlement, and
    return its request id."""
    seller = user_make(verified=None)
    listing = listing_row_make(seller=seller)

    def settle(user, nusd: int) -> str:
        request_id = f"plan-step-{next(_request_ids)}"
        billing_services.request_settle(
            settlement=settlement_make(
                buyer=user,
                seller=seller,
                listing=listing,
                request_id=request_id,
                ask_input_nusd=1_000_000,  # $0.001/M: one nano-USD per input token
                ask_output_nusd=USD,  # $1/M: 1,000 nano-USD per output token
                input_units=nusd % 1000,
                output_units=nusd // 1000,
            )
        )
        assert UsageRecord.objects.get(request_id=request_id).buyer_debit_nusd == nusd
        return request_id

    return settle


def _status(user) -> tuple:
    s = selectors.plan_status(user=user)
    return (
        s.plan.slug,
        s.next_plan.slug if s.next_plan else None,
        s.next_missing_topups_nusd,
        s.next_missing_spend_nusd,
    )


def test_the_seeded_plans_unlock_at_half_their_top_up_figure_in_spend(db):
    rows = list(
        Plan.objects.values_list("slug", "min_lifetime_topup_nusd", "min_lifetime_spend_nusd")
    )
    assert rows == [
        ("free", 0, 0),
        ("starter", 10 * USD, 5 * USD),
        ("pro", 100 * USD, 50 * USD),
        ("enterprise", 0, 0),
    ]


def test_top_ups_alone_step_the_plan_and_the_next_step_shows_both_figures(buyer, topup):
    assert _status(buyer) == ("free", "starter", 10 * USD, 5 * USD)
    topup(buyer, 1000)
    assert _status(buyer) == ("starter", "pro", 90 * USD, 50 * USD)
    topup(buyer, 9000)
    assert _status(buyer) == ("pro", None, 0, 0)


def test_spend_alone_steps_the_plan(buyer, spend):
    fund(buyer, "60")  # granted credit: not a top-up
    spend(buyer, 5 * USD - 1)
    assert _status(buyer) == ("free", "starter", 10 * USD, 1)
    spend(buyer, 1)
    assert _status(buyer) == ("starter", "pro", 100 * USD, 45 * USD)
    spend(buyer, 45 * USD)
    status = selectors.plan_status(user=buyer)
    assert (status.plan.slug, status.next_plan) == ("pro", None)
    assert (status.lifetime_topups_nusd, status.lifetime_spent_nusd) == (0, 50 * USD)


def test_whichever_measure_is_further_along_wins(buyer, topup, spend):
    topup(buyer, 700)  # $7 topped up: short of Starter's $10
    spend(buyer, 5_500_000_000)  # $5.50 spent: past Starter's $5
    assert _status(buyer) == ("starter", "pro", 93 * USD, 44_500_000_000)
    topup(buyer, 9300)  # $100 topped up: Pro by top-ups while spend is still at Starter
    assert _status(buyer) == ("pro", None, 0, 0)


def test_an_operator_override_wins_over_both_measures(buyer, topup, spend):
    topup(buyer, 10_000)
    spend(buyer, 50 * USD)
    buyer.plan_override = Plan.objects.get(slug="free")
    buyer.save()
    status = selectors.plan_status(user=buyer)
    assert (status.plan.slug, status.overridden, status.next_plan) == ("free", True, None)
    assert selectors.user_plan(user=buyer).slug == "free"


def test_a_plan_that_is_not_automatic_is_never_reached(buyer, topup, spend):
    Plan.objects.filter(slug="pro").update(automatic=False)
    topup(buyer, 20_000)
    spend(buyer, 60 * USD)
    assert _status(buyer) == ("starter", None, 0, 0)  # Enterprise's zero thresholds unlock nothing


def test_a_refund_lowers_spend_and_can_take_the_step_back(buyer, spend):
    fund(buyer, "10")
    first = spend(buyer, 3 * USD)
    spend(buyer, 2 * USD)
    assert _status(buyer)[0] == "starter"
    staff = user_make(email="ops@example.com", is_staff=True, is_superuser=True, verified=None)
    billing_services.request_refund(request_id=first, reason="wrong answer", staff_user_id=staff.pk)
    assert _status(buyer) == ("free", "starter", 10 * USD, 3 * USD)
    assert selectors.plan_status(user=buyer).lifetime_spent_nusd == 2 * USD


def test_an_operator_moves_a_spend_threshold(buyer, spend):
    Plan.objects.filter(slug="starter").update(min_lifetime_spend_nusd=USD)
    fund(buyer, "2")
    spend(buyer, USD)
    assert _status(buyer)[0] == "starter"


def test_the_migration_leaves_an_operators_plans_where_their_top_ups_put_them(db):
    """Plans it did not seed, or whose top-up figure an operator moved, get their top-up figure
    as their spend figure: the new column's default 0 would have put every buyer on them."""
    Plan.objects.update(min_lifetime_spend_nusd=0)
    Plan.objects.filter(slug="starter").update(min_lifetime_topup_nusd=20 * USD)
    Plan.objects.create(slug="team", name="Team", rank=5, min_lifetime_topup_nusd=500 * USD)
    import_module("accounts.migrations.0008_plan_spend_threshold").spend_thresholds_set(apps, None)
    assert dict(Plan.objects.values_list("slug", "min_lifetime_spend_nusd")) == {
        "free": 0,
        "starter": 20 * USD,
        "pro": 50 * USD,
        "enterprise": 0,
        "team": 500 * USD,
    }


def test_the_auth_record_carries_the_next_step_without_reading_usage_records(buyer, spend):
    fund(buyer, "10")
    spend(buyer, 2 * USD)
    _, secret = services.access_key_create(user=buyer, name="gw")
    with CaptureQueriesContext(connection) as queries:
        record = selectors.access_key_auth_record(key_hash=keys.key_hash(secret))
    assert record["plan"] == {
        "slug": "free",
        "requests_per_minute": 10,
        "tokens_per_minute": 40_000,
        "next": {
            "slug": "starter",
            "name": "Starter",
            "requests_per_minute": 60,
            "tokens_per_minute": 200_000,
            "missing_topups_nusd": 10 * USD,
            "missing_spend_nusd": 3 * USD,
        },
    }
    assert UsageRecord.objects.filter(buyer=buyer).count() == 1
    sql = " ".join(q["sql"] for q in queries.captured_queries)
    assert UsageRecord._meta.db_table not in sql
    assert '"spent_nusd"' in sql


def test_the_dashboard_and_the_account_api_show_both_ways_to_the_next_step(
    buyer_client, buyer, topup, spend
):
    topup(buyer, 700)
    spend(buyer, 5_500_000_001)
    page = buyer_client.get(reverse("dashboard")).content.decode()
    assert 'id="plan">Starter<' in page
    assert (
        "Pro (300 rpm) unlocks with $93.00 more in top-ups or $44.499999999 more in spend." in page
    )
    assert "So far: $7.00 topped up, $5.500000001 spent." in page
    account = buyer_client.get(reverse("api_account")).json()
    assert account["plan"]["slug"] == "starter"
    assert account["next_plan"] == {
        "slug": "pro",
        "name": "Pro",
        "requests_per_minute": 300,
        "tokens_per_minute": 1_000_000,
        "missing_topups_nusd": 93 * USD,
        "missing_spend_nusd": 44_499_999_999,
    }


def test_the_dashboard_names_no_step_under_an_override(buyer_client, buyer):
    buyer.plan_override = Plan.objects.get(slug="starter")
    buyer.save()
    page = buyer_client.get(reverse("dashboard")).content.decode()
    assert 'id="plan">Starter<' in page and "Set by an operator." in page
    assert 'id="next-plan"' not in page
    assert buyer_client.get(reverse("api_account")).json()["next_plan"] is None
