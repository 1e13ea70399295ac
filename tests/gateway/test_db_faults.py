"""Database faults on /v1: terminated connections heal, an unreachable database is a clean 503, and
an answered request's settlement lands once the database is back (docs/gateway.md, "Database
faults"). Real PostgreSQL: connections are killed with pg_terminate_backend, and the database is
made unreachable with ALLOW_CONNECTIONS false (what a restarting server looks like to a client).
"""

import asyncio
import time

import orjson
import psycopg
import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection, connections

from billing.models import Hold, LedgerTransaction, UsageRecord
from billing.money import usd_to_nusd
from billing.selectors import wallet_summary
from redis_clients.clients import get_redis
from tests.gateway.factories import buyer_make
from tests.market.factories import listing_make, seller_make

pytestmark = pytest.mark.django_db(transaction=True)
MODEL = "deepseek/deepseek-chat"
UNREACHABLE = "The marketplace's database is unreachable; retry with exponential backoff."


@pytest.fixture
def heal(transactional_db):
    """The test's own main-thread connection is killed with the rest: close it before the
    database is flushed (this teardown runs before transactional_db's)."""
    yield
    connections.close_all()


@pytest.fixture(params=["sql", "orm"])
def money_path(request, settings):
    """Billing's async fast path (PostgreSQL's default), or the ORM services on worker threads
    (DRAGONFLY_BILLING_SQL_FASTPATH off), which go through gateway/db.py like the other calls."""
    settings.DRAGONFLY_BILLING_SQL_FASTPATH = request.param == "sql"
    return request.param


def _terminate_others() -> int:
    """Kill every other backend of the test database: the gateway's worker-thread connections,
    its money pool, and the main thread's. The connection running this (the test's sync thread)
    survives."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


def _alter_database(change: str) -> None:
    """ALTER DATABASE <the test database> <change>, from the maintenance database (PostgreSQL
    refuses some changes for the current one)."""
    params = connection.get_connection_params()
    params = {k: v for k, v in params.items() if k not in ("cursor_factory", "context")}
    params["dbname"] = "postgres"
    name = connection.settings_dict["NAME"]
    with psycopg.connect(**params, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" {change}')


def _allow_connections(allow: bool) -> None:
    """ALLOW_CONNECTIONS false refuses every new connection to the test database, a superuser's
    too (unlike CONNECTION LIMIT)."""
    _alter_database(f"WITH ALLOW_CONNECTIONS {'true' if allow else 'false'}")


def _auth(buyer):
    return {"Authorization": f"Bearer {buyer.key}"}


async def _chat(client, buyer, **extra):
    return await client.post(
        "/v1/chat/completions",
        headers=_auth(buyer),
        json={"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 50},
        **extra,
    )


def _forget_caches():
    """Cold caches: the next request looks up its key, loads the routing table and decrypts the
    seller key, each on a worker thread whose connection was killed."""
    from gateway import runtime

    runtime.caches.clear()


async def _settled(buyer, request_ids, *, within=10.0):
    """Wait (up to `within` seconds) until every request's settlement landed; then the money is
    exact: one usage record, one settlement transaction, a settled hold each (or a draw from a
    balance lease, which then ends), nothing held, the wallet debited exactly the usage records'
    sum."""
    from gateway import background, billing_calls

    await background.drain()
    await billing_calls.end_leases()

    def state():
        records = list(UsageRecord.objects.filter(buyer=buyer.user))
        holds = dict(Hold.objects.filter(user=buyer.user).values_list("request_id", "status"))
        settlements = LedgerTransaction.objects.filter(
            idempotency_key__in=[f"settle:{rid}" for rid in request_ids]
        ).count()
        return records, holds, settlements, wallet_summary(user=buyer.user)

    deadline = time.monotonic() + within
    while True:
        records, holds, settlements, wallet = await sync_to_async(state)()
        if len(records) == len(request_ids) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    assert sorted(r.request_id for r in records) == sorted(request_ids)
    own = {rid: status for rid, status in holds.items() if "lease" not in rid}
    assert own.items() <= {rid: "settled" for rid in request_ids}.items()
    assert {status for rid, status in holds.items() if "lease" in rid} <= {"voided", "settled"}
    assert settlements == len(request_ids)
    assert all(r.buyer_debit_nusd > 0 for r in records)
    assert wallet["held_nusd"] == 0
    assert wallet["balance_nusd"] == usd_to_nusd("10") - sum(r.buyer_debit_nusd for r in records)


async def test_the_next_requests_after_every_connection_is_terminated_are_served_and_billed(
    market, client, heal, money_path
):
    buyer = await sync_to_async(buyer_make)()
    await sync_to_async(lambda: listing_make(seller_make(), key="sim-dbf-kill"))()
    first = await _chat(client, buyer)  # opens the worker threads' connections and the money pool
    assert first.status_code == 200, first.text
    ids = [first.headers["x-df-market-request-id"]]

    _forget_caches()
    assert await sync_to_async(_terminate_others)() >= 2
    started = time.monotonic()
    after = [await _chat(client, buyer) for _ in range(3)]
    recovered_in = time.monotonic() - started

    assert [r.status_code for r in after] == [200, 200, 200], [r.text for r in after]
    assert recovered_in < 5, recovered_in
    ids += [r.headers["x-df-market-request-id"] for r in after]
    await _settled(buyer, ids)


async def test_connections_the_server_closed_for_idling_are_replaced(market, client, heal):
    """PostgreSQL's idle_session_timeout (or a proxy's idle cut) closes the gateway's idle
    connections: the next requests reconnect and are served."""
    buyer = await sync_to_async(buyer_make)()
    await sync_to_async(lambda: listing_make(seller_make(), key="sim-dbf-idle"))()
    await sync_to_async(_alter_database)("SET idle_session_timeout = '300ms'")
    try:
        await sync_to_async(_terminate_others)()  # every new connection idles out after 300 ms
        first = await _chat(client, buyer)
        assert first.status_code == 200, first.text
        _forget_caches()
        await asyncio.sleep(1.0)  # the worker threads' and the money pool's connections are gone
        after = [await _chat(client, buyer) for _ in range(3)]
    finally:
        await sync_to_async(_alter_database)("RESET idle_session_timeout")
    assert [r.status_code for r in after] == [200, 200, 200], [r.text for r in after]
    await _settled(
        buyer,
        [first.headers["x-df-market-request-id"]]
        + [r.headers["x-df-market-request-id"] for r in after],
    )


async def test_a_settlement_whose_pool_connection_died_after_the_hold_still_lands(
    market, client, heal, money_path
):
    buyer = await sync_to_async(buyer_make)()
    await sync_to_async(lambda: listing_make(seller_make(), key="sim-dbf-slow?ttft_ms=800"))()
    request = asyncio.ensure_future(_chat(client, buyer))

    def held() -> bool:
        return Hold.objects.filter(user=buyer.user, status="active").exists()

    deadline = time.monotonic() + 5
    while not await sync_to_async(held)():  # the hold is placed; the upstream is thinking
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    assert await sync_to_async(_terminate_others)() >= 1  # the money pool's connections too

    response = await request
    assert response.status_code == 200, response.text
    await _settled(buyer, [response.headers["x-df-market-request-id"]])


async def test_a_settlement_is_retried_in_the_background_until_the_database_is_back(
    market, client, heal, monkeypatch
):
    """The database stays unreachable for the inline attempt and the next two retries (a pool
    wait that times out, as in a restart that takes a while); the buyer gets the answer at once
    and the settlement lands on a later retry."""
    from billing.services import fastpath_async
    from gateway import background, billing_calls, process

    buyer = await sync_to_async(buyer_make)()
    await sync_to_async(lambda: listing_make(seller_make(), key="sim-dbf-later"))()
    real = fastpath_async.request_settle
    failures = []

    kept = []  # what Redis holds for this process's reaper while the settlement waits

    async def unreachable_three_times(*, settlement):
        if failures:
            kept.append(
                get_redis().hget(billing_calls.unsettled_key(process.ID), settlement.request_id)
            )
        if len(failures) < 3:
            failures.append(settlement.request_id)
            raise psycopg.OperationalError("couldn't get a connection after 3.00 sec")
        return await real(settlement=settlement)

    monkeypatch.setattr(fastpath_async, "request_settle", unreachable_three_times)
    monkeypatch.setattr(billing_calls, "SETTLE_RETRY_DELAYS", (0.05, 0.1), raising=False)
    response = await _chat(client, buyer)
    assert response.status_code == 200, response.text
    request_id = response.headers["x-df-market-request-id"]
    await _settled(buyer, [request_id])
    assert failures == [request_id] * 3
    assert len(kept) == 3 and all(orjson.loads(k)["request_id"] == request_id for k in kept)
    await background.drain()
    assert not get_redis().hexists(billing_calls.unsettled_key(process.ID), request_id)  # landed


def _error(response) -> dict:
    assert response.status_code == 503, (response.status_code, response.text)
    assert response.headers["retry-after"] == "1"
    return response.json()


async def test_with_the_database_unreachable_requests_get_a_clean_503_and_recover_within_seconds(
    market, client, heal
):
    from gateway import auth, routing, runtime

    buyer = await sync_to_async(buyer_make)()
    await sync_to_async(lambda: listing_make(seller_make(), key="sim-dbf-down"))()
    first = await _chat(client, buyer)
    assert first.status_code == 200, first.text
    stale_after = max(3 * settings.DRAGONFLY_ROUTING_REFRESH_SECONDS, 10)

    await sync_to_async(_allow_connections)(False)
    try:
        await sync_to_async(_terminate_others)()
        # Warm caches but a routing table too stale to trust: its reload fails, the stale table
        # serves, and the hold cannot be placed: 503, nothing held.
        current = await routing.table()
        runtime.caches.routing_table = routing.Table(
            current.candidates, current.catalogue, current.fees, time.monotonic() - stale_after - 1
        )
        on_hold = await _chat(client, buyer)
        assert _error(on_hold) == {
            "error": {"message": UNREACHABLE, "type": "market_unavailable", "code": 503}
        }
        # A key this process has not cached: its lookup fails (twice), 503.
        auth.cache_clear()
        on_lookup = await _chat(client, buyer)
        assert _error(on_lookup)["error"]["message"] == UNREACHABLE
        # Anthropic's shape on /v1/messages.
        on_messages = await client.post(
            "/v1/messages",
            headers={"x-api-key": buyer.key},
            json={
                "model": MODEL,
                "max_tokens": 50,
                "messages": [{"role": "user", "content": "Hi"}],
            },
        )
        body = _error(on_messages)
        assert body["type"] == "error"
        assert body["error"]["message"] == UNREACHABLE
    finally:
        await sync_to_async(_allow_connections)(True)

    started = time.monotonic()
    statuses = []
    while True:
        response = await _chat(client, buyer)
        statuses.append(response.status_code)
        if response.status_code == 200 or time.monotonic() - started > 30:
            break
        await asyncio.sleep(0.1)
    recovered_in = time.monotonic() - started
    assert statuses[-1] == 200, statuses
    assert set(statuses) <= {200, 503}, statuses
    assert recovered_in < 5, (recovered_in, statuses)
    await _settled(
        buyer,
        [first.headers["x-df-market-request-id"], response.headers["x-df-market-request-id"]],
    )
    assert (
        await sync_to_async(
            Hold.objects.filter(request_id=on_hold.headers["x-df-market-request-id"]).exists
        )()
        is False
    )
