"""Issue 18's case through the real servers: both DeepSeek listings' keys rejected by the upstream.
One 502, then a 503 that says why (`{"suspended": 2}`) and links the model's market page; the
second server stops routing to them within one table refresh, without calling the upstream."""

import json
import time

import httpx
import openai
import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
MODEL = "deepseek/deepseek-chat"
HELLO = [{"role": "user", "content": "Hello!"}]
SUSPENDED_503 = {
    "error": {
        "message": "No eligible seller channel was healthy enough for the current constraints.",
        "type": "market_unavailable",
        "code": 503,
        "constraints": {"suspended": 2},
        "market": f"http://dragonfly.test/market/{MODEL}/",
    }
}


def _calls(world) -> int:
    keys = world.sim.app.stats()["keys"]
    return sum(keys.get(k, {}).get("requests", 0) for k in ("sim-e2e-dk-a", "sim-e2e-dk-b"))


def test_both_keys_rejected_is_one_502_then_a_503_that_says_suspended(world):
    buyer = world.buyer()
    world.listing(key="sim-e2e-dk-a", percent=80)
    world.listing(key="sim-e2e-dk-b", percent=90, trusted=True)
    for server in world.servers:
        world.routable(MODEL, 2, server=server)
    for key in ("sim-e2e-dk-a", "sim-e2e-dk-b"):
        world.sim.app.registry.set_runtime(key, {"reject": 401})
    client = world.client(buyer.key)

    with pytest.raises(openai.APIStatusError) as first:
        client.chat.completions.create(model=MODEL, messages=HELLO)
    assert first.value.status_code == 502
    assert _calls(world) == 2  # each listing tried once

    with pytest.raises(openai.APIStatusError) as second:
        client.chat.completions.create(model=MODEL, messages=HELLO)
    assert second.value.status_code == 503
    assert second.value.response.json() == SUSPENDED_503
    print("503 answer:", json.dumps(second.value.response.json()))
    assert _calls(world) == 2

    # The other server: within one table refresh (1 s here), without calling the upstream.
    other = world.servers[1]
    started = time.monotonic()
    world.routable(MODEL, 0, server=other)
    assert time.monotonic() - started < 2.5
    answer = httpx.post(
        other.url + "/v1/chat/completions",
        json={"model": MODEL, "messages": HELLO},
        headers={"Authorization": f"Bearer {buyer.key}"},
        timeout=30,
    )
    assert answer.status_code == 503
    assert answer.json() == SUSPENDED_503
    assert _calls(world) == 2
    assert world.wallet(buyer)["held_nusd"] == 0
