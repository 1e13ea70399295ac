"""One settled request's record (billing/generation.py) on the buyer's usage detail page and in the
seller's lookup (/seller/sales/): every field, a request settled before routes were kept, the
buyer's own requests only, and nothing of the buyer or of other sellers' listings for a seller."""

import pytest
from django.test import Client

from billing import selectors, services
from market.models import Provider
from tests.accounts.factories import user_make
from tests.billing.factories import fund, settlement_make
from tests.market.factories import listing_row_make, seller_make

pytestmark = pytest.mark.django_db(transaction=True)

REQUEST_ID = "req_0123456789abcdef01234567"


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _settle(buyer, seller, listing, *, request_id=REQUEST_ID, route=None, **overrides):
    services.hold_place(request_id=request_id, user_id=buyer.pk, amount_nusd=10_000_000)
    services.request_settle(
        settlement=settlement_make(
            buyer=buyer,
            seller=seller,
            listing=listing,
            request_id=request_id,
            route=route,
            **overrides,
        )
    )


@pytest.fixture
def routed():
    """A buyer's request that asked for gpt-4o, failed over from another seller's listing (another
    provider) and was served by the seller's listing."""
    buyer, seller, rival = user_make(verified=None), seller_make(), seller_make()
    fund(buyer, "1")
    listing = listing_row_make(seller=seller, name="mine")
    Provider.objects.create(slug="rivalco", name="Rival Co", base_url="http://127.0.0.1:9")
    other = listing_row_make(seller=rival, name="theirs")
    route = {
        "model": "gpt-4o",
        "model_resolved": "deepseek/deepseek-chat",
        "alias_source": "builtin_alias",
        "attempts": [
            {
                "listing_id": other.pk,
                "provider": "rivalco",
                "outcome": "failed_over",
                "reason": "http_503",
            },
            {"listing_id": listing.pk, "provider": "sim", "outcome": "served", "reason": None},
        ],
    }
    _settle(buyer, seller, listing, route=route)
    return buyer, seller, listing, other


def test_the_record_has_every_field_of_the_agreed_shape(routed):
    buyer, _, listing, other = routed
    g = selectors.usage_generation(buyer=buyer, request_id=REQUEST_ID)
    assert g is not None
    assert {k: g[k] for k in ("id", "model", "model_resolved", "alias_source")} == {
        "id": REQUEST_ID,
        "model": "gpt-4o",
        "model_resolved": "deepseek/deepseek-chat",
        "alias_source": "builtin_alias",
    }
    assert (g["provider_name"], g["listing_id"], g["upstream_model"]) == (
        "Simulated",
        listing.pk,
        "deepseek-chat",
    )
    assert (g["ask_input_usd_per_million"], g["ask_output_usd_per_million"]) == (0.27, 1.1)
    assert (g["fee_profile"], g["fee_bps"]) == ("Default", 1000)
    assert (g["tokens_prompt"], g["tokens_completion"]) == (1000, 500)
    # 1000 x $0.27/M + 500 x $1.10/M = $0.00082; 10 % fee
    assert (g["cost_nusd"], g["buyer_debit_nusd"], g["overrun_nusd"]) == (820_000, 820_000, 0)
    assert (g["seller_credit_nusd"], g["fee_nusd"], g["total_cost"]) == (738_000, 82_000, 0.00082)
    # streamed: 500 tokens over the 780 ms from the first token to the end
    assert (g["ttft_ms"], g["duration_ms"], g["throughput_tps"]) == (120, 900, 641.03)
    assert (g["streamed"], g["outcome"], g["refunded"]) == (True, "completed", False)
    assert g["attempts"] == [
        {
            "listing_id": other.pk,
            "provider_name": "Rival Co",
            "outcome": "failed_over",
            "reason": "http_503",
        },
        {
            "listing_id": listing.pk,
            "provider_name": "Simulated",
            "outcome": "served",
            "reason": None,
        },
    ]


def test_the_usage_detail_page_shows_the_route_and_the_split(routed):
    buyer, _, listing, other = routed
    response = _client(buyer).get(f"/billing/usage/{REQUEST_ID}/")
    html = response.content.decode()
    assert response.status_code == 200
    for shown in (
        '<code>gpt-4o</code> <span class="badge">builtin_alias</span>',
        "<code>deepseek/deepseek-chat</code>",
        "<td>Simulated</td>",
        f"#{listing.pk}",
        "<code>deepseek-chat</code>",
        "$0.27 / $1.10 (tokens)",
        "Default (1000 bps)",
        "1000 / 500",
        '<td id="buyer-debit">$0.00082</td>',
        '<td id="split-seller">$0.000738</td>',
        '<td id="split-fee">$0.000082</td>',
        "Platform fee (10% of the cost)",
        "120 ms",
        "900 ms",
        "641.03 tokens/s",
        "completed (streamed)",
        "<code>http_503</code>",
        "Rival Co",
        f"#{other.pk}",
    ):
        assert shown in html, shown
    assert html.index("failed over") < html.index(">served<")


def test_a_request_settled_before_routes_were_kept_shows_what_its_record_has(routed):
    buyer, seller, listing, _ = routed
    _settle(buyer, seller, listing, request_id="req_legacy", streamed=False)
    g = selectors.usage_generation(buyer=buyer, request_id="req_legacy")
    assert (g["model"], g["model_resolved"], g["alias_source"], g["attempts"]) == (
        "deepseek/deepseek-chat",
        "deepseek/deepseek-chat",
        None,
        [],
    )
    assert g["throughput_tps"] == round(500 * 1000 / 900, 2)  # a plain answer: the whole time
    html = _client(buyer).get("/billing/usage/req_legacy/").content.decode()
    assert "Settled before routes were recorded" in html


def test_another_accounts_request_is_a_404_on_the_page_and_none_from_the_selector(routed):
    other = user_make(verified=None)
    assert selectors.usage_generation(buyer=other, request_id=REQUEST_ID) is None
    assert _client(other).get(f"/billing/usage/{REQUEST_ID}/").status_code == 404


# --- the seller's lookup ---


def test_the_seller_sees_the_earnings_side_and_only_its_own_listings_attempts(routed):
    buyer, seller, listing, other = routed
    sale = selectors.sale_generation(seller=seller, request_id=REQUEST_ID)
    assert sale is not None
    assert set(sale) == {
        "id", "created_at", "model", "model_resolved", "alias_source", "provider_name",
        "listing_id", "upstream_model", "price_unit", "ask_input_usd_per_million",
        "ask_output_usd_per_million", "ask_input_nusd_per_million", "ask_output_nusd_per_million",
        "fee_profile", "fee_bps", "tokens_prompt", "tokens_completion", "cost_nusd",
        "seller_credit_nusd", "fee_nusd", "ttft_ms", "duration_ms", "throughput_tps", "streamed",
        "outcome", "refunded", "sla", "attempts",
    }  # fmt: skip
    assert sale["attempts"] == [
        {
            "listing_id": listing.pk,
            "provider_name": "Simulated",
            "outcome": "served",
            "reason": None,
        }
    ]
    assert sale["model"] == "gpt-4o"  # a built-in alias: the platform's name, not the buyer's

    response = _client(seller).get(f"/seller/sales/{REQUEST_ID}/")
    html = response.content.decode()
    assert response.status_code == 200
    assert '<td id="seller-credit">$0.000738</td>' in html
    assert "$0.000082" in html and "$0.00082" in html  # fee, cost at the ask
    assert buyer.email not in html
    assert "Rival Co" not in html and f"#{other.pk}<" not in html and "http_503" not in html


@pytest.mark.parametrize("source", ["profile_alias", "profile_default", "platform_default"])
def test_a_model_name_of_the_buyers_own_is_not_shown_to_the_seller(source):
    buyer, seller = user_make(verified=None), seller_make()
    fund(buyer, "1")
    listing = listing_row_make(seller=seller)
    secret = "acme-secret-project-bot"
    route = {
        "model": secret,
        "model_resolved": "deepseek/deepseek-chat",
        "alias_source": source,
        "attempts": [
            {"listing_id": listing.pk, "provider": "sim", "outcome": "served", "reason": None}
        ],
    }
    _settle(buyer, seller, listing, route=route)
    sale = selectors.sale_generation(seller=seller, request_id=REQUEST_ID)
    assert (sale["model"], sale["alias_source"]) == (None, None)
    assert secret not in _client(seller).get(f"/seller/sales/{REQUEST_ID}/").content.decode()
    assert selectors.usage_generation(buyer=buyer, request_id=REQUEST_ID)["model"] == secret


def test_a_request_the_sellers_listing_did_not_serve_is_a_404(routed):
    _, seller, _, other = routed
    rival = other.seller  # its listing was tried first and failed over: not theirs to see
    for user in (rival, seller_make()):
        assert selectors.sale_generation(seller=user, request_id=REQUEST_ID) is None
        assert _client(user).get(f"/seller/sales/{REQUEST_ID}/").status_code == 404
    assert _client(seller).get("/seller/sales/req_unknown/").status_code == 404


def test_the_search_box_leads_to_the_request_and_refuses_garbage(routed):
    _, seller, _, _ = routed
    client = _client(seller)
    assert 'action="/seller/sales/"' in client.get("/seller/").content.decode()
    response = client.get("/seller/sales/", {"id": f"  {REQUEST_ID} "})
    assert (response.status_code, response["Location"]) == (302, f"/seller/sales/{REQUEST_ID}/")
    for garbage in ("abc", "req_", "req_../../x", "<script>", "req_" + "a" * 200):
        response = client.get("/seller/sales/", {"id": garbage})
        assert response.status_code == 400
        assert "Paste a request id" in response.content.decode()
    assert client.get("/seller/sales/").status_code == 200  # the empty form


def test_the_lookup_is_for_sellers_only(routed):
    buyer, _, _, _ = routed
    assert _client(buyer).get(f"/seller/sales/{REQUEST_ID}/")["Location"] == "/seller/terms/"
    assert Client().get(f"/seller/sales/{REQUEST_ID}/")["Location"].startswith("/accounts/login/")


def test_the_seller_sees_its_own_listing_that_failed_over_before_its_other_one_served():
    buyer, seller, rival = user_make(verified=None), seller_make(), seller_make()
    fund(buyer, "1")
    first, theirs = listing_row_make(seller=seller, name="a"), listing_row_make(seller=rival)
    second = listing_row_make(seller=seller, name="b")
    attempts = [
        {"listing_id": first.pk, "provider": "sim", "outcome": "failed_over", "reason": "timeout"},
        {
            "listing_id": theirs.pk,
            "provider": "sim",
            "outcome": "failed_over",
            "reason": "http_500",
        },
        {"listing_id": second.pk, "provider": "sim", "outcome": "served", "reason": None},
    ]
    route = {"model": "m", "model_resolved": "m", "alias_source": None, "attempts": attempts}
    _settle(buyer, seller, second, route=route)
    sale = selectors.sale_generation(seller=seller, request_id=REQUEST_ID)
    assert [(a["listing_id"], a["reason"]) for a in sale["attempts"]] == [
        (first.pk, "timeout"),
        (second.pk, None),
    ]
