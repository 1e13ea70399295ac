"""The session price lock through the real servers: within one X-Session-Id the asks of the
session's first request hold when the seller raises them (and say so in
X-DF-Market-Price-Locked-Until), on both servers; another session pays the new asks; a lowered ask
applies at once; a lock that ran out gives way to the current asks and starts again."""

import time

import httpx
import pytest

from billing.money import usd_to_nusd
from market.models import ListingModel
from redis_clients.clients import get_redis

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
MODEL = "deepseek/deepseek-chat"
HELLO = [{"role": "user", "content": "Hello!"}]


def _post(world, buyer, session: str, server=None):
    response = httpx.post(
        (server or world.server).url + "/v1/chat/completions",
        json={"model": MODEL, "messages": HELLO, "max_tokens": 20},
        headers={"Authorization": f"Bearer {buyer.key}", "X-Session-Id": session},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return response


def _ask(response) -> int:
    return usd_to_nusd(response.headers["x-df-market-ask-input"])


def _reprice(world, listing, ask_input_nusd: int) -> None:
    """The seller's new input ask, once both servers' routing tables show it."""
    world.db(
        lambda: ListingModel.objects.filter(listing=listing).update(ask_input_nusd=ask_input_nusd)
    )
    shown = f"{ask_input_nusd / 1000 / 1e9:.12g}"
    for server in world.servers:
        deadline = time.monotonic() + 10
        url = f"{server.url}/v1/models/{MODEL}"
        while f"{httpx.get(url, timeout=2).json()['market_ask']['input']:.12g}" != shown:
            assert time.monotonic() < deadline, "the new ask never reached the routing table"
            time.sleep(0.1)


def _settled_ask(world, response) -> int:
    record = world.usage(response.headers["x-df-market-request-id"])
    return record.ask_input_nusd


def test_a_sessions_first_asks_hold_when_the_seller_raises_them(world):
    buyer = world.buyer()
    listing = world.listing(key="sim-e2e-lock")
    world.routable(MODEL, 1)
    first = _post(world, buyer, "lock-1")
    locked_ask = _ask(first)
    assert "x-df-market-price-locked-until" not in first.headers

    _reprice(world, listing, locked_ask * 2)
    for server in world.servers:  # the lock is the session's, whichever process serves it
        held = _post(world, buyer, "lock-1", server)
        assert _ask(held) == _settled_ask(world, held) == locked_ask
        assert held.headers["x-df-market-price-locked-until"].endswith("Z")
    other = _post(world, buyer, "lock-2")
    assert _ask(other) == _settled_ask(world, other) == locked_ask * 2
    assert "x-df-market-price-locked-until" not in other.headers

    _reprice(world, listing, locked_ask // 2)
    lowered = _post(world, buyer, "lock-1")
    assert _ask(lowered) == _settled_ask(world, lowered) == locked_ask // 2
    assert "x-df-market-price-locked-until" not in lowered.headers


def test_a_lock_that_ran_out_gives_way_to_the_current_asks_and_starts_again(world):
    buyer = world.buyer()
    listing = world.listing(key="sim-e2e-lock-end")
    world.routable(MODEL, 1)
    locked_ask = _ask(_post(world, buyer, "lock-3"))
    key = f"sticky:{buyer.user.pk}:lock-3"
    listing_id, ask_in, ask_out, _ = get_redis().get(key).split()
    get_redis().set(key, f"{listing_id} {ask_in} {ask_out} {time.time() - 1:.0f}", ex=600)

    _reprice(world, listing, locked_ask * 3)
    after = _post(world, buyer, "lock-3")
    assert _ask(after) == _settled_ask(world, after) == locked_ask * 3
    assert "x-df-market-price-locked-until" not in after.headers
    renewed = get_redis().get(key).split()
    assert int(renewed[1]) == locked_ask * 3 and float(renewed[3]) > time.time() + 1700
