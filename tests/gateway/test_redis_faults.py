"""Redis is never a single point of failure: limits per process, short stalls if hung, recovery."""

import asyncio
import socket
import statistics
import threading
import time

import pytest
from asgiref.sync import sync_to_async
from django.test import Client, override_settings

from accounts.models import Plan
from billing.models import UsageRecord
from gateway import runtime
from redis_clients.clients import get_redis
from tests.gateway.factories import buyer_make
from tests.market.factories import listing_make, seller_make

pytestmark = pytest.mark.django_db(transaction=True)
MODEL = "deepseek/deepseek-chat"
DEAD = "redis://127.0.0.1:1/0"  # nothing listens: connections are refused at once


class HungRedis:
    """A TCP server that accepts connections and never answers (a hung Redis, not a dead one)."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=512)
        self._listener.settimeout(0.1)
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self.url = f"redis://127.0.0.1:{self._listener.getsockname()[1]}/0"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            self._held.append(conn)

    def __enter__(self) -> "HungRedis":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        for conn in self._held:
            conn.close()
        self._listener.close()


async def _same_minute(seconds: int) -> None:
    """Start where the next `seconds` seconds all fall in one fixed window."""
    if time.time() % 60 > 60 - seconds:
        await asyncio.sleep(60 - time.time() % 60 + 0.1)


def _post(client, buyer, session: str | None = None):
    headers = {"Authorization": f"Bearer {buyer.key}"}
    if session:
        headers["X-Session-Id"] = session
    return client.post(
        "/v1/chat/completions",
        headers=headers,
        json={"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 10},
    )


async def _ready(market_key: str):
    from gateway import routing

    await sync_to_async(lambda: listing_make(seller_make(), key=market_key))()
    await routing.reload()  # a table with the listing's health, read while Redis answers


async def test_with_redis_down_a_free_buyer_gets_exactly_the_plan_then_429(market, client):
    await _same_minute(20)
    buyer = await sync_to_async(buyer_make)(plan="free")
    plan_rpm = (await Plan.objects.aget(slug="free")).requests_per_minute
    assert plan_rpm == 10
    await _ready("sim-faults-free")
    with override_settings(REDIS_URL=DEAD):
        responses = [await _post(client, buyer) for _ in range(plan_rpm + 3)]
    assert [r.status_code for r in responses] == [200] * plan_rpm + [429] * 3
    assert [r.headers["x-ratelimit-remaining-requests"] for r in responses] == [
        str(n) for n in range(plan_rpm - 1, -1, -1)
    ] + ["0"] * 3
    refused = responses[-1]
    assert refused.json()["error"]["type"] == "rate_limit_exceeded"
    assert refused.headers["x-ratelimit-limit-requests"] == "10"
    assert refused.headers["x-ratelimit-remaining"] == "0"
    assert refused.headers["x-ratelimit-limit-tokens"] == "40000"
    reset_at = int(refused.headers["x-ratelimit-reset"])
    assert reset_at % 60 == 0 and 0 < reset_at - time.time() <= 60
    assert refused.headers["retry-after"] == refused.headers["x-ratelimit-reset-requests"][:-1]
    assert market.app.stats()["keys"]["sim-faults-free"]["requests"] == plan_rpm
    from gateway import background

    await background.drain()
    assert await UsageRecord.objects.filter(buyer=buyer.user).acount() == plan_rpm


async def test_with_redis_down_each_process_allows_its_share_of_the_plan(market, client):
    await _same_minute(20)
    buyer = await sync_to_async(buyer_make)(plan="free")
    await _ready("sim-faults-share")
    with override_settings(REDIS_URL=DEAD, DRAGONFLY_GATEWAY_PROCESSES=3):
        codes = [(await _post(client, buyer)).status_code for _ in range(6)]
    assert codes == [200] * 4 + [429] * 2  # ceil(10 / 3): three processes allow 12 at most


async def test_after_redis_returns_counting_goes_back_to_redis_with_the_outage_counts(
    market, client
):
    await _same_minute(20)
    buyer = await sync_to_async(buyer_make)(plan="free")
    await _ready("sim-faults-back")
    assert (await _post(client, buyer)).status_code == 200  # counted in Redis
    await runtime.current().close_redis()  # the next call connects with the current REDIS_URL
    with override_settings(REDIS_URL=DEAD):
        during = [await _post(client, buyer) for _ in range(3)]
    await runtime.current().close_redis()  # the next call connects with the current REDIS_URL
    # The outage's count is local and starts from zero: the one counted in Redis is the bound's
    # "counted before the outage".
    assert [r.headers["x-ratelimit-remaining-requests"] for r in during] == ["9", "8", "7"]
    await asyncio.sleep(1.1)  # the backoff after the last failure; nothing else to do
    after = await _post(client, buyer)
    assert after.status_code == 200
    window = int(time.time() // 60)
    redis = get_redis()
    assert redis.get(f"rl:u:{buyer.user.pk}:r:{window}") == "5"  # 1 before + 3 added + this one
    assert after.headers["x-ratelimit-remaining-requests"] == "5"
    rest = [(await _post(client, buyer)).status_code for _ in range(6)]
    assert rest == [200] * 5 + [429]  # the plan's 10 in Redis: the outage gave nothing extra
    assert redis.get(f"rl:u:{buyer.user.pk}:r:{window}") == "10"


async def test_with_redis_hung_requests_are_served_without_stalling(market, client):
    buyer = await sync_to_async(buyer_make)(plan="enterprise")
    await _ready("sim-faults-hung")
    from gateway import routing

    for _ in range(3):  # warm: the first requests pay for connections and caches
        assert (await _post(client, buyer, session="s1")).status_code == 200
    await runtime.current().close_redis()  # the next call connects with the current REDIS_URL
    latencies: list[float] = []

    async def timed():
        started = time.perf_counter()
        response = await _post(client, buyer, session="s1")
        latencies.append(time.perf_counter() - started)
        return response.status_code

    with HungRedis() as hung, override_settings(REDIS_URL=hung.url):
        started = time.perf_counter()
        await routing.reload()  # the table's health read falls back to the last read, quickly
        reload_seconds = time.perf_counter() - started
        codes = []
        for _ in range(3):  # three backoffs expire, each time one call waits for the hung Redis
            codes += [await timed() for _ in range(5)]
            codes += await asyncio.gather(*(timed() for _ in range(5)))
            await asyncio.sleep(1.05)
        readyz = await sync_to_async(Client().get)("/readyz")
    assert codes == [200] * 30
    assert reload_seconds < 1.5
    assert max(latencies) < 1.5, sorted(latencies)
    assert statistics.median(latencies) < 0.5, sorted(latencies)
    assert readyz.status_code == 200
    assert readyz.json()["checks"]["redis"] == "down: TimeoutError"


async def test_readyz_reports_redis_down_as_degraded_and_recovers_by_itself():
    probe = Client()
    with override_settings(REDIS_URL=DEAD):
        down = await sync_to_async(probe.get)("/readyz")
    back = await sync_to_async(probe.get)("/readyz")
    assert down.status_code == 200  # still serving: load balancers keep it in rotation
    assert down.json() == {
        "ready": True,
        "degraded": True,
        "checks": {"database": "ok", "redis": "down: ConnectionError"},
    }
    assert back.status_code == 200
    assert back.json() == {
        "ready": True,
        "degraded": False,
        "checks": {"database": "ok", "redis": "ok"},
    }
