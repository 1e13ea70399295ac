"""The listing page's "why traffic moved" card: the seller's own counts by reason over the chosen
window, the chart, the advice; never another seller's listing or counts."""

import time

import pytest

from market import route_outcomes
from tests.market.factories import listing_make, seller_make

pytestmark = pytest.mark.django_db(transaction=True)
MODEL = "deepseek/deepseek-chat"


def _now_minute() -> int:
    return int(time.time() // 60)


def test_the_seller_sees_counts_by_reason_with_advice(client, catalogue, seller):
    mine = listing_make(seller, key="sim-tm-mine", percent=56, requests_per_minute=30)
    other_seller = seller_make()
    theirs = listing_make(other_seller, key="sim-tm-theirs", percent=50, name="Rival listing")
    now = _now_minute()
    route_outcomes.route_outcomes_add(
        counts={
            (mine.pk, MODEL, "won", now): 7,
            (mine.pk, MODEL, "cheaper", now): 2,
            (mine.pk, MODEL, "capacity", now - 2): 1,
            (mine.pk, MODEL, "requests_per_minute", now - 2): 2,
            (mine.pk, MODEL, "sticky", now - 3 * 60): 5,  # outside the last hour
            (theirs.pk, MODEL, "won", now): 999,
        }
    )
    client.force_login(seller)
    page = client.get(f"/seller/listings/{mine.pk}/?window=1h").content.decode()
    assert "Why traffic moved, last hour" in page
    assert "12 requests for this listing's models reached the market; it served 7 (58.3%)" in page
    assert '<tr data-reason="won"><td>Served by this listing</td><td class="num">7</td>' in page
    assert '<tr data-reason="cheaper">' in page and '<tr data-reason="sticky">' not in page
    assert "your ask is 12% above the cheapest healthy listing ($0.375 against your $0.42" in page
    assert "Your concurrency cap (8) refused 1 request: raise it" in page
    assert "Your cap of 30 requests per minute refused 2 requests: raise it" in page
    assert page.count('class="segment"') == 3  # won and price in the last bar; both caps in one
    card = page[page.index('id="traffic-moved"') : page.index("are never named")]
    assert "Rival listing" not in page and "999" not in card  # the page's emails hold random digits
    assert other_seller.email not in page
    day = client.get(f"/seller/listings/{mine.pk}/").content.decode()  # the default: 24 hours
    assert "Why traffic moved, last 24 hours" in day
    assert '<tr data-reason="sticky">' in day


def test_a_listing_without_traffic_says_so(client, catalogue, seller):
    mine = listing_make(seller, key="sim-tm-quiet")
    client.force_login(seller)
    page = client.get(f"/seller/listings/{mine.pk}/?window=7d").content.decode()
    assert "No requests for this listing&#x27;s models in the last 7 days." in page
    assert f"{MODEL}: no other healthy listing offers it now." in page
    assert 'id="traffic-reasons"' not in page


def test_another_seller_cannot_read_a_listing_s_counts(client, catalogue, seller):
    mine = listing_make(seller, key="sim-tm-private")
    route_outcomes.route_outcomes_add(counts={(mine.pk, MODEL, "won", _now_minute()): 3})
    client.force_login(seller_make())
    assert client.get(f"/seller/listings/{mine.pk}/?window=1h").status_code == 404
