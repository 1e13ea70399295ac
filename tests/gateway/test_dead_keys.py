"""A dead key stops being tried at once: in this process at the first rejection, in every other
process at its next table load; the 503 counts the listing as suspended (issue 18, items 5-6)."""

import asyncio

import pytest
from asgiref.sync import sync_to_async

from gateway import dead_keys, routing
from gateway.routing import Table
from gateway.runtime import caches
from market.models import Listing
from tests.gateway.factories import buyer_make
from tests.gateway.test_routing import cand
from tests.market.factories import listing_make, seller_make

pytestmark = pytest.mark.django_db(transaction=True)
MODEL = "deepseek/deepseek-chat"
HELLO = [{"role": "user", "content": "Hello!"}]
SUSPENDED_503 = {
    "message": "No eligible seller channel was healthy enough for the current constraints.",
    "type": "market_unavailable",
    "code": 503,
    "constraints": {"suspended": 1},
    "market": f"http://127.0.0.1:8000/market/{MODEL}/",
}


async def _drained():
    from gateway import background, health_reports
    from market.health_passive import background_drain

    await health_reports.flush()
    await background.drain()
    await background_drain()


def _requests(sim, key: str) -> int:
    return sim.app.stats()["keys"].get(key, {}).get("requests", 0)


async def _burst(client, buyer, n: int = 20):
    return await asyncio.gather(
        *(
            client.post(
                "/v1/chat/completions",
                headers={"Authorization": f"Bearer {buyer.key}"},
                json={"model": MODEL, "messages": HELLO},
            )
            for _ in range(n)
        )
    )


async def test_a_burst_after_the_only_key_dies_gets_one_502_then_503s(market, client):
    buyer = await sync_to_async(buyer_make)()
    listing = await sync_to_async(
        lambda: listing_make(seller_make(), key="sim-dk-only", concurrency_cap=30)
    )()
    assert (await _burst(client, buyer, 1))[0].status_code == 200  # table loaded, key cached
    market.app.registry.set_runtime("sim-dk-only", {"reject": 401})
    before = _requests(market, "sim-dk-only")

    responses = await _burst(client, buyer)

    statuses = [r.status_code for r in responses]
    assert statuses.count(502) == 1, statuses
    assert [r.json()["error"] for r in responses if r.status_code != 502] == [SUSPENDED_503] * 19
    # Requests already sent when the first rejection came back meet it too (and get the 503,
    # not a 502); every request ranked after it makes no upstream call.
    in_flight = _requests(market, "sim-dk-only") - before
    assert 1 <= in_flight < 20
    await _drained()
    later = await _burst(client, buyer)
    assert [r.json()["error"] for r in later] == [SUSPENDED_503] * 20
    assert _requests(market, "sim-dk-only") - before == in_flight
    status = await sync_to_async(lambda: Listing.objects.get(pk=listing.pk).status)()
    assert status == "suspended"  # written at once, for every other process


async def test_one_request_after_a_key_dies_costs_one_upstream_call_then_none(market, client):
    buyer = await sync_to_async(buyer_make)()
    await sync_to_async(lambda: listing_make(seller_make(), key="sim-dk-seq"))()
    market.app.registry.set_runtime("sim-dk-seq", {"reject": 401})
    statuses = [(await _burst(client, buyer, 1))[0].status_code for _ in range(5)]
    assert statuses == [502, 503, 503, 503, 503]
    assert _requests(market, "sim-dk-seq") == 1
    # GET /v1/models agrees at once, before any table refresh.
    model = (await client.get(f"/v1/models/{MODEL}")).json()
    assert model["live_listings"] == 0


async def test_with_a_second_listing_the_burst_is_served_and_the_dead_one_left(market, client):
    buyer = await sync_to_async(buyer_make)()
    dead = await sync_to_async(
        lambda: listing_make(seller_make(), key="sim-dk-dead", percent=50, concurrency_cap=30)
    )()
    good = await sync_to_async(
        lambda: listing_make(seller_make(), key="sim-dk-good", percent=90, concurrency_cap=30)
    )()
    first = (await _burst(client, buyer, 1))[0]
    assert first.headers["x-df-market-listing-id"] == str(dead.pk)  # the cheaper one
    market.app.registry.set_runtime("sim-dk-dead", {"reject": 403})
    before = _requests(market, "sim-dk-dead")

    responses = await _burst(client, buyer)

    assert [r.status_code for r in responses] == [200] * 20
    assert {r.headers["x-df-market-listing-id"] for r in responses} == {str(good.pk)}
    in_flight = _requests(market, "sim-dk-dead") - before
    assert 1 <= in_flight < 20
    again = await _burst(client, buyer)
    assert [r.status_code for r in again] == [200] * 20
    assert _requests(market, "sim-dk-dead") - before == in_flight


async def test_another_process_sees_the_suspension_at_its_next_table_load(market, client):
    buyer = await sync_to_async(buyer_make)()
    listing = await sync_to_async(lambda: listing_make(seller_make(), key="sim-dk-other"))()
    market.app.registry.set_runtime("sim-dk-other", {"reject": 402})
    assert (await _burst(client, buyer, 1))[0].status_code == 502
    await _drained()

    caches.clear()  # a second process: no mark, no table; it loads one from the database
    table = await routing.table()

    assert MODEL not in table.candidates
    assert table.offline[MODEL] == {"suspended": 1}
    before = _requests(market, "sim-dk-other")
    refused = (await _burst(client, buyer, 1))[0]
    assert refused.status_code == 503
    assert refused.json()["error"] == SUSPENDED_503
    assert _requests(market, "sim-dk-other") == before
    assert listing.pk not in dead_keys.excluded(table)  # it knows from the table, not a mark


async def test_a_paused_and_a_suspended_listing_are_counted_in_the_503(market, client):
    from market import services

    buyer = await sync_to_async(buyer_make)()

    def make():
        paused = listing_make(seller_make(), key="sim-dk-paused")
        services.listing_pause(listing=paused)
        suspended = listing_make(seller_make(), key="sim-dk-suspended")
        services.listing_suspend(listing_id=suspended.pk, reason="test", notify=False)
        listing_make(seller_make(), key="sim-dk-pending", status="pending")  # offers nothing yet

    await sync_to_async(make)()
    refused = (await _burst(client, buyer, 1))[0]
    assert refused.status_code == 503
    assert refused.json()["error"]["constraints"] == {"suspended": 1, "paused": 1}
    assert market.app.stats()["keys"] == {}


def _table(rows, loaded_at: float) -> Table:
    return Table({MODEL: rows}, {}, {}, loaded_at)


def test_a_mark_lasts_until_a_settled_table_shows_the_listing_routable_again():
    import time

    caches.clear()
    dead_keys.mark(7)
    marked_at = caches.dead_keys[7]
    assert dead_keys.marked(7)
    # A table loaded before the suspension could land still shows the listing healthy: kept.
    assert dead_keys.excluded(_table([cand(7)], marked_at + 0.5)) == {7}
    # A settled table that shows it suspended, or not at all: kept.
    later = marked_at + dead_keys.SETTLED_SECONDS + 1
    assert dead_keys.excluded(_table([cand(7, health="suspended")], later)) == {7}
    assert dead_keys.excluded(_table([], later)) == {7}
    # A settled table that routes it again (re-keyed and verified): forgotten.
    assert dead_keys.excluded(_table([cand(7)], later)) == frozenset()
    assert not dead_keys.marked(7)
    # And never longer than its lifetime.
    caches.dead_keys[8] = time.monotonic() - dead_keys.LIFETIME_SECONDS
    assert not dead_keys.marked(8)
    assert dead_keys.excluded(_table([], marked_at)) == frozenset()
    assert caches.dead_keys == {}
