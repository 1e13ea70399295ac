"""A plan step reached by spend, through the real servers: the settlement that crosses Starter's
spend threshold shows in `x-ratelimit-limit-requests` within one key-cache period on each process
(tests/e2e/conftest.py runs both with DRAGONFLY_KEY_CACHE_SECONDS=1), and GET /v1/key tells the
next step and what unlocks it, exactly."""

import time

import httpx
import pytest

from accounts.models import Plan

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
MODEL = "deepseek/deepseek-chat"
USD = 1_000_000_000
POLL = 0.05
# Every GET /v1/key counts as a request against the Free plan's 10 a minute (gateway/limit_headers.py),
# so before the second chat the wait polls sparingly: at most ceil(1 s / 0.25 s) + 1 = 5 polls per
# process for its 1 s key cache, leaving room for both chats whatever the machine's speed.
SPARING_POLL = 0.25
# One cache period (1 s) plus room for a loaded CI machine; a fixed sleep is never needed.
DEADLINE = 5.0


def _chat(world, key: str) -> str:
    response = httpx.post(
        world.base + "/chat/completions",
        json={"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 20},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-ratelimit-limit-requests"] == "10"  # still Free when admitted
    return response.headers["x-df-market-request-id"]


def _key_info(server, key: str) -> httpx.Response:
    response = httpx.get(
        server.url + "/v1/key", headers={"Authorization": f"Bearer {key}"}, timeout=5
    )
    assert response.status_code == 200, response.text
    return response


def _wait_for(
    server, key: str, shown, since: float, poll: float = POLL
) -> tuple[float, httpx.Response]:
    """Poll GET /v1/key on `server` until `shown(response)`: (seconds since `since`, response)."""
    deadline = since + DEADLINE
    while True:
        response = _key_info(server, key)
        if shown(response):
            return time.monotonic() - since, response
        if time.monotonic() > deadline:
            raise AssertionError(f"{server.url} still answers {response.text} after {DEADLINE}s")
        time.sleep(poll)


def _limit(response: httpx.Response) -> str:
    return response.headers["x-ratelimit-limit-requests"]


def test_the_settlement_that_crosses_a_spend_step_lifts_the_limit_on_every_process(world):
    buyer = world.buyer(credit_usd="10")  # granted credit: no top-ups, so only spend can step

    def automatic_plan():
        buyer.user.plan_override = None
        buyer.user.save(update_fields=["plan_override"])

    world.db(automatic_plan)
    world.listing(key="sim-e2e-plan-steps")
    world.routable(MODEL, 1)

    first = world.usage(_chat(world, buyer.key))
    assert first is not None and first.buyer_debit_nusd > 0
    # Starter now unlocks one nano-USD past what this buyer has spent: the next request crosses it.
    threshold = first.buyer_debit_nusd + 1
    world.db(lambda: Plan.objects.filter(slug="starter").update(min_lifetime_spend_nusd=threshold))
    moved = time.monotonic()
    for server in world.servers:  # each process sees the move once its cached record expires
        _, before = _wait_for(
            server,
            buyer.key,
            lambda r: (r.json()["next_plan"] or {}).get("missing_spend_nusd") == 1,
            moved,
            SPARING_POLL,
        )
        assert (_limit(before), before.json()["plan"]) == ("10", "free")

    request_id = _chat(world, buyer.key)
    answered = time.monotonic()
    second = world.usage(request_id)
    settled = time.monotonic()
    assert second is not None
    spent = first.buyer_debit_nusd + second.buyer_debit_nusd

    delays = {}
    for server in world.servers:
        delay, response = _wait_for(server, buyer.key, lambda r: _limit(r) == "60", answered)
        delays[server.url] = delay
        body = response.json()
        assert body["plan"] == "starter"
        assert body["limits"]["account"] == {
            "requests_per_minute": 60,
            "tokens_per_minute": 200_000,
        }
        assert body["next_plan"] == {
            "slug": "pro",
            "name": "Pro",
            "requests_per_minute": 300,
            "tokens_per_minute": 1_000_000,
            "missing_topups_usd": 100.0,
            "missing_topups_nusd": 100 * USD,
            "missing_spend_usd": (50 * USD - spent) / USD,
            "missing_spend_nusd": 50 * USD - spent,
        }
    credits = httpx.get(
        world.base + "/credits", headers={"Authorization": f"Bearer {buyer.key}"}, timeout=5
    ).json()
    assert credits["lifetime_spend_nusd"] == spent
    print(  # the measurement, for the report (pytest -s)
        f"settled {settled - answered:.3f}s after the answer; new limit seen after "
        + ", ".join(f"{delay:.3f}s" for delay in delays.values())
    )
    assert all(delay < DEADLINE for delay in delays.values())
