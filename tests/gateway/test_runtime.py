"""The gateway's runtime (gateway/runtime.py): one per event loop, and one close() that leaves nothing
open: no task, no upstream session, no database pool connection, no Redis connection, no lease."""

import asyncio
import threading
import time

import pytest
from asgiref.sync import sync_to_async
from django.db import connection

from gateway import background, process, runtime
from gateway.models import GatewayProcess
from redis_clients.clients import get_redis
from tests.gateway.factories import buyer_make
from tests.market.factories import listing_make, seller_make

pytestmark = pytest.mark.django_db(transaction=True)


def _backend_alive(pid: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid])
        return cursor.fetchone()[0] == 1


def _redis_client_ids() -> set[int]:
    return {int(client["id"]) for client in get_redis().client_list()}


async def _until(condition, within: float = 2.0) -> bool:
    """Poll a server-side fact (a closed connection leaves the server's list a moment later)."""
    deadline = time.monotonic() + within
    while not await sync_to_async(condition)():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


def _others() -> set[asyncio.Task]:
    return asyncio.all_tasks() - {asyncio.current_task()}


async def test_close_leaves_no_task_session_pool_connection_or_lease_open(market, client):
    buyer = await sync_to_async(buyer_make)()
    await sync_to_async(lambda: listing_make(seller_make(), key="sim-runtime"))()
    assert _others() == set()
    state = runtime.start()  # as Daphne's start hook: the runtime and the process's lease
    for stream in (False, True):
        response = await client.post(
            "/v1/chat/completions",
            headers={"Authorization": f"Bearer {buyer.key}"},
            json={
                "model": "deepseek/deepseek-chat",
                "messages": [{"role": "user", "content": "Hello!"}],
                "stream": stream,
            },
        )
        assert response.status_code == 200, response.text
    assert runtime.current() is state
    # What one loop's traffic opened: the refresher, health flusher and lease loops, an upstream
    # session with a connection, the money pool, Redis connections, a lease row.
    assert {"routing", "health", "lease"} <= set(state.services)
    assert _others()
    session = state.upstream
    assert session is not None and not session.closed
    pool = state.money_pool
    async with pool.connection() as conn:
        pid = (await (await conn.execute("SELECT pg_backend_pid()")).fetchone())[0]
    assert await sync_to_async(_backend_alive)(pid)
    redis = state.redis
    redis_ids = set(await asyncio.gather(*(redis.client_id() for _ in range(4))))
    assert redis_ids <= await sync_to_async(_redis_client_ids)()
    assert await _until(lambda: GatewayProcess.objects.filter(id=process.ID).exists())

    await state.close()

    assert _others() == set()
    assert state.services == {} and state.tasks == set()
    assert session.closed and session.connections == 0
    assert pool.closed
    assert await _until(lambda: not _backend_alive(pid))
    assert await _until(lambda: not (redis_ids & _redis_client_ids()))
    assert state.upstream is None and state.money_pool is None and state.redis is None
    assert not await sync_to_async(GatewayProcess.objects.filter(id=process.ID).exists)()
    assert runtime.current() is not state  # a closed runtime is never handed out again


async def test_close_waits_for_background_work_started_through_the_registry():
    done = []

    async def work():
        await asyncio.sleep(0.05)
        done.append("task")

    state = runtime.current()
    background.spawn(work())
    state.track(asyncio.get_running_loop().run_in_executor(None, lambda: done.append("thread")))
    await state.close()
    assert sorted(done) == ["task", "thread"]
    assert _others() == set()


async def test_each_event_loop_has_its_own_runtime():
    here = runtime.current()
    assert runtime.current() is here
    there = []
    thread = threading.Thread(target=lambda: there.append(asyncio.run(_current())))
    thread.start()
    thread.join()
    assert there[0] is not here and there[0].loop is not here.loop
    await here.close()


async def _current() -> runtime.Runtime:
    state = runtime.current()
    await state.close()
    return state


def test_reset_forgets_the_process_caches():
    runtime.caches.auth_live["digest"] = (time.monotonic() + 60, {"key_id": 1})
    runtime.caches.upstream_keys[1] = (time.monotonic() + 60, "sk")
    runtime.caches.redis_failing = True
    runtime.caches.spend_in_flight[1] = 5
    runtime.reset()
    assert runtime.caches.auth_live == {}
    assert runtime.caches.upstream_keys == {}
    assert runtime.caches.redis_failing is False
    assert runtime.caches.spend_in_flight == {}
