"""A listing's concurrency cap across two real gateway processes (Daphne, Redis), with capacity
shares (gateway/capacity_shares.py) keeping slots between requests: bursts of more requests than
the cap, sent to both processes at once, never put more requests in flight at the listing's
upstream than its cap, and once the traffic stops, every slot the processes kept goes back."""

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from redis_clients.clients import get_redis

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
MODEL = "deepseek/deepseek-chat"
CAP = 4
BURST = 12  # requests at once, half to each process


def _ask(server, key: str) -> int:
    response = httpx.post(
        server.url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8},
        timeout=30,
    )
    if response.status_code == 503:
        assert response.json()["error"]["constraints"] == {"capacity": 1}, response.text
    return response.status_code


def test_two_processes_bursting_past_a_listings_cap_never_pass_it_and_give_every_slot_back(world):
    buyer = world.buyer(credit_usd="10")
    listing = world.listing(key="sim-e2e-cap?ttft_ms=150&tokens=4", concurrency_cap=CAP)
    for server in world.servers:
        world.routable(MODEL, 1, server=server)

    statuses: list[int] = []
    with ThreadPoolExecutor(BURST) as pool:
        # Bursts a moment apart (slots kept between them) and after a pause (kept slots swept).
        for pause in (0.3, 0.3, 2.5, 0.3):
            servers = [world.servers[i % 2] for i in range(BURST)]
            statuses += pool.map(lambda server: _ask(server, buyer.key), servers)
            time.sleep(pause)

    assert set(statuses) <= {200, 503}
    assert statuses.count(200) >= 4 * CAP  # every burst filled the cap at least once
    upstream = world.sim.app.stats()["keys"]["sim-e2e-cap"]
    assert upstream["most_in_flight"] <= CAP
    assert upstream["requests"] == statuses.count(200)  # a 503 never reached it

    redis = get_redis()
    deadline = time.monotonic() + 5  # two sweeps of each process's lease loop, and then some
    while redis.zcard(f"cap:inflight:{listing.pk}") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert redis.zcard(f"cap:inflight:{listing.pk}") == 0
