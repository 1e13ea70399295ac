"""routing_table() and catalogue_list(): what the gateway routes on."""

import pytest

from market import catalogue as catalogue_module
from market import health, health_record
from market.models import CatalogModel, Listing, ListingStatus, Provider
from market.route_candidates import RouteCandidate
from market.selectors import catalogue_list, routing_offline_counts, routing_table
from tests.market.factories import listing_make

pytestmark = pytest.mark.django_db


def test_it_lists_active_listings_per_model_cheapest_first_with_health(seller, other_seller, sim):
    dear = listing_make(
        seller, percent=95, models=("deepseek/deepseek-chat", "deepseek/deepseek-reasoner")
    )
    cheap = listing_make(other_seller, percent=70)
    Listing.objects.filter(pk=dear.pk).update(trusted=True, requests_per_minute=30)
    for ttft in (100, 200, 300):
        health_record.health_report(
            listing_id=cheap.pk,
            ok=True,
            status_code=200,
            ttft_ms=ttft,
            tokens_per_second=40,
            passive=True,
        )

    table = routing_table()

    chat = CatalogModel.objects.get(model_id="deepseek/deepseek-chat")
    assert sorted(table) == ["deepseek/deepseek-chat", "deepseek/deepseek-reasoner"]
    assert [c.listing_id for c in table["deepseek/deepseek-chat"]] == [cheap.pk, dear.pk]
    assert table["deepseek/deepseek-chat"][0] == RouteCandidate(
        listing_id=cheap.pk,
        seller_id=other_seller.pk,
        provider_slug="deepseek",
        wire_format="openai",
        base_url=f"{sim.url}/v1",
        model_id="deepseek/deepseek-chat",
        upstream_model="deepseek-v4-flash",
        upstream_params={"thinking": {"type": "disabled"}},
        modality="chat",
        price_unit="token",
        ask_input_nusd=chat.list_input_nusd * 70 // 100,
        ask_output_nusd=chat.list_output_nusd * 70 // 100,
        trusted=False,
        concurrency_cap=8,
        requests_per_minute=None,
        health="healthy",
        ttft_p50_ms=200.0,
        tps_p50=40.0,
        context_tokens=128_000,
    )
    second = table["deepseek/deepseek-chat"][1]
    assert (second.trusted, second.requests_per_minute, second.health) == (True, 30, "unknown")
    assert [c.listing_id for c in table["deepseek/deepseek-reasoner"]] == [dear.pk]


def test_only_active_listings_of_active_providers_and_models_appear(seller):
    active = listing_make(seller)
    for status in (
        ListingStatus.PENDING,
        ListingStatus.PAUSED,
        ListingStatus.SUSPENDED,
        ListingStatus.REJECTED,
        ListingStatus.DELETED,
    ):
        listing_make(seller, status=status, name=status)
    minimax = listing_make(seller, provider="minimax", models=("minimax/minimax-m2.5",))
    reasoner = listing_make(seller, models=("deepseek/deepseek-reasoner",))
    assert {c.listing_id for cs in routing_table().values() for c in cs} == {
        active.pk,
        minimax.pk,
        reasoner.pk,
    }
    Provider.objects.filter(slug="minimax").update(is_active=False)
    CatalogModel.objects.filter(model_id="deepseek/deepseek-reasoner").update(is_active=False)
    assert {c.listing_id for cs in routing_table().values() for c in cs} == {active.pk}


def test_cooling_down_and_suspended_listings_are_returned_with_that_health(seller, other_seller):
    cooling = listing_make(seller)
    rejected = listing_make(other_seller)
    for _ in range(health.FAIL_THRESHOLD):
        health_record.health_report(
            listing_id=cooling.pk,
            ok=False,
            status_code=503,
            ttft_ms=None,
            tokens_per_second=None,
            passive=True,
        )
    health_record.health_report(
        listing_id=rejected.pk,
        ok=False,
        status_code=401,
        ttft_ms=None,
        tokens_per_second=None,
        passive=False,
    )
    by_id = {c.listing_id: c.health for c in routing_table()["deepseek/deepseek-chat"]}
    assert by_id == {cooling.pk: "cooling_down", rejected.pk: "suspended"}


def test_suspended_and_paused_listings_are_counted_per_model_in_one_query(
    seller, django_assert_num_queries
):
    listing_make(seller)
    for status in (
        ListingStatus.PENDING,
        ListingStatus.PAUSED,
        ListingStatus.SUSPENDED,
        ListingStatus.REJECTED,
        ListingStatus.DELETED,
    ):
        listing_make(seller, status=status, name=status)
    listing_make(
        seller,
        status=ListingStatus.SUSPENDED,
        models=("deepseek/deepseek-chat", "deepseek/deepseek-reasoner"),
    )
    listing_make(seller, provider="minimax", models=("minimax/minimax-m2.5",), status="paused")
    with django_assert_num_queries(1):
        counts = routing_offline_counts()
    assert counts == {
        "deepseek/deepseek-chat": {"suspended": 2, "paused": 1},
        "deepseek/deepseek-reasoner": {"suspended": 1},
        "minimax/minimax-m2.5": {"paused": 1},
    }
    Provider.objects.filter(slug="minimax").update(is_active=False)
    CatalogModel.objects.filter(model_id="deepseek/deepseek-reasoner").update(is_active=False)
    assert routing_offline_counts() == {"deepseek/deepseek-chat": {"suspended": 2, "paused": 1}}


def test_it_costs_one_query(seller, other_seller, django_assert_num_queries):
    listing_make(seller, models=("deepseek/deepseek-chat", "deepseek/deepseek-reasoner"))
    listing_make(other_seller)
    listing_make(other_seller, provider="minimax", models=("minimax/minimax-m2.5",))
    with django_assert_num_queries(1):
        table = routing_table()
    assert sum(len(v) for v in table.values()) == 4


def test_the_catalogue_lists_active_models_with_list_prices(catalogue):
    CatalogModel.objects.filter(model_id="minimax/speech-02-turbo").update(is_active=False)
    rows = {row["model_id"]: row for row in catalogue_list()}
    assert len(rows) == len(catalogue_module.MODELS) - 1
    assert rows["deepseek/deepseek-chat"] == {
        "model_id": "deepseek/deepseek-chat",
        "display_name": "deepseek/deepseek-chat",
        "provider_slug": "deepseek",
        "upstream_model": "deepseek-v4-flash",
        "modality": "chat",
        "price_unit": "token",
        "list_input_nusd": 500_000_000,
        "list_output_nusd": 1_500_000_000,
        "context_tokens": 128_000,
        "capabilities": ["chat", "code"],
        "platform_default": True,
    }
    assert rows["minimax/speech-02-hd"]["price_unit"] == "character"
    assert rows["minimax/speech-02-hd"]["platform_default"] is False


def test_a_listing_is_flagged_once_todays_sales_reach_its_daily_spend_cap(
    seller, other_seller, sim
):
    from billing.services import request_settle
    from tests.accounts.factories import user_make
    from tests.billing.factories import settlement_make

    capped = listing_make(seller, percent=80)
    roomy = listing_make(other_seller, percent=90)
    Listing.objects.filter(pk__in=[capped.pk, roomy.pk]).update(daily_spend_cap_nusd=1_000_000)
    buyer = user_make(verified=None)
    for listing, request_id in ((capped, "cap-1"), (roomy, "cap-2")):
        request_settle(
            settlement=settlement_make(
                buyer=buyer,
                seller=listing.seller,
                listing=listing,
                request_id=request_id,
                input_units=1000 if listing == capped else 1,  # $0.00137 vs $0.00000027
                output_units=1000 if listing == capped else 0,
            )
        )

    flags = {c.listing_id: c.daily_cap_reached for c in routing_table()["deepseek/deepseek-chat"]}

    assert flags == {capped.pk: True, roomy.pk: False}
