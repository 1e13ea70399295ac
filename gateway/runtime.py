"""The gateway's process state in one place: a Runtime per event loop, process-wide caches beside it.

Everything bound to an event loop (pools, sessions, clients, semaphores, futures, tasks, batchers,
timers) is a field of the loop's Runtime, created on first use by `current()` (Daphne's start hook
and the ASGI lifespan create it up front: `start()`) and closed by one `close()` that goes through
every field in order, so nothing can be left open. Every fire-and-forget task of the gateway and
of market health goes through its registry (`spawn`, `track`) and long-running loops through
`service`; close() cancels those and drains the rest.

What is not loop-bound and is safe across loops (caches of records, per-process counts, Redis's
circuit) lives in `caches`, one object for the process. `reset()` is the one reset of both (tests).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from gateway.balance_leases import Leases
from gateway.capacity_shares import Shares
from gateway.local_counts import LocalCounts

if TYPE_CHECKING:
    import redis.asyncio as aioredis
    from psycopg_pool import AsyncConnectionPool

    from event_loop.batching import Batcher
    from gateway.upstream.client import Client

logger = logging.getLogger("gateway")

DRAIN_SECONDS = 5.0


class Caches:
    """Process-wide state: not bound to a loop, read and written from any loop or worker thread."""

    def __init__(self) -> None:
        # auth.py: digest -> (fresh until, record); digest -> remembered until; key id -> touched
        self.auth_live: OrderedDict[str, tuple[float, dict]] = OrderedDict()
        self.auth_unknown: OrderedDict[str, float] = OrderedDict()
        self.auth_touched: dict[int, float] = {}
        # client_limits.py and limits.py: per-process counts while Redis fails
        self.address_counts = LocalCounts(10_000)
        self.rate_counts = LocalCounts(20_000)
        # kv.py: Redis's circuit (skip until; the last call failed; one trial call in flight)
        self.redis_down_until = 0.0
        self.redis_failing = False
        self.redis_trying = False
        self.upstream_keys: dict[int, tuple[float, str]] = {}  # proxy.py: listing -> (until, key)
        self.dead_keys: dict[int, float] = {}  # dead_keys.py: listing -> key rejected at
        self.routing_table: Any = None  # routing.py: the Table, shared by every loop
        self.routing_stale_retry_at = 0.0
        self.spend_in_flight: dict[int, int] = {}  # spend.py: key id -> holds unsettled
        # market/health.py: each listing's last view read, answered while Redis fails, until when
        self.health_last: dict[int, Any] = {}
        self.health_skip_until = 0.0

    def clear(self) -> None:
        self.__init__()  # type: ignore[misc]


caches = Caches()


class Runtime:
    """One event loop's state. Components keep theirs in these fields and create them lazily."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.tasks: set[asyncio.Future] = set()  # fire-and-forget work and executor follow-ups
        self.services: dict[str, asyncio.Task] = {}  # loops that run until close: name -> task
        self.admission: asyncio.Semaphore | None = None  # admission.py
        self.settlements_waiting = 0  # admission.py: settlements on their way, not landed yet
        self.settlement_room: deque[asyncio.Future[None]] = deque()  # requests waiting for room
        self.auth_lookups: dict[str, asyncio.Future] = {}  # auth.py: digest -> shared lookup
        self.capacity_released: list[tuple[str, str]] = []  # capacity.py: (in-flight key, member)
        self.capacity_flush: asyncio.TimerHandle | None = None
        self.capacity_takes: Batcher | None = None  # capacity.py
        self.capacity_shares = Shares()  # capacity_shares.py, through capacity.py
        self.streams: dict[str, Any] = {}  # checkpoints.py: request id -> a stream in flight
        self.streams_ended: list[str] = []
        self.health_pending: dict[int, Any] = {}  # health_reports.py: listing -> successes
        self.outcomes_pending: dict[tuple, int] = {}  # route_outcomes.py: its counts
        self.settling: set[str] = set()  # money.py: request ids whose settlement is retried
        self.routing_lock = asyncio.Lock()  # routing.py: one forced table load at a time
        self.upstream: Client | None = None  # upstream/base.py
        self.money_pool: AsyncConnectionPool | None = None  # billing fastpath_async
        self.money_batchers: tuple[Batcher, Batcher, Batcher] | None = None  # holds, settles, voids
        self.balance_leases = Leases()  # balance_leases.py, through billing_calls.py
        self.redis: aioredis.Redis | None = None  # redis_clients/clients.py

    # ------------------------------------------------------------ the background-task registry

    def spawn(self, coro: Coroutine) -> asyncio.Task:
        """Run `coro` off the response path: referenced until done, a failure logged."""
        task = self.loop.create_task(coro)
        self.track(task)
        return task

    def track(self, future: asyncio.Future) -> None:
        """Keep a future (a task, or work on a worker thread) until done; close() waits for it."""
        self.tasks.add(future)
        future.add_done_callback(self._done)

    def _done(self, future: asyncio.Future) -> None:
        self.tasks.discard(future)
        if not future.cancelled() and future.exception() is not None:
            logger.warning("background task failed: %r", future.exception())

    def service(self, name: str, coro_fn) -> asyncio.Task:
        """The loop named `name` (started with `coro_fn()` unless it runs): until close()."""
        task = self.services.get(name)
        if task is None or task.done():
            task = self.services[name] = self.loop.create_task(coro_fn())
        return task

    def stop_service(self, name: str) -> asyncio.Task | None:
        """Cancel the loop named `name`; its task, or None if it was not running."""
        task = self.services.pop(name, None)
        if task is not None:
            task.cancel()
        return task

    async def drain(self, within: float | None = DRAIN_SECONDS) -> None:
        """Wait for the background work (and what it starts meanwhile), up to `within` seconds."""
        deadline = None if within is None else time.monotonic() + within
        while pending := [f for f in self.tasks if not f.done()]:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                logger.warning("%d background tasks still running after %s s", len(pending), within)
                return
            await asyncio.wait(pending, timeout=left)

    # ------------------------------------------------------------ one close

    async def close_redis(self) -> None:
        """Close the Redis client and its connections (the next call makes a new one)."""
        client, self.redis = self.redis, None
        if client is not None:
            await client.aclose()
            await client.connection_pool.disconnect()

    async def close_money(self) -> None:
        """Apply what the money batchers still hold, then close the money pool."""
        batchers, self.money_batchers = self.money_batchers or (), None
        for batcher in batchers:
            await batcher.idle()
        pool, self.money_pool = self.money_pool, None
        if pool is not None:
            await pool.close()

    async def close(self) -> None:
        """Close everything this loop holds, in order: the routing refresher stops, pending health,
        route outcomes and capacity releases are written, background work drains, the balance
        leases end, the process's lease is given back, then the upstream session, the money pool
        and the Redis client close."""
        from gateway import billing_calls, capacity, health_reports, process, route_outcomes

        stopped = [self.stop_service("routing")]
        await health_reports.stop()
        await route_outcomes.stop()
        if self.capacity_takes is not None:
            await self.capacity_takes.idle()  # a cancelled take gives its slot back
        await capacity.flush()
        await self.drain()
        await billing_calls.end_leases()  # every request has settled: what the leases left
        await process.stop()
        stopped += [self.stop_service(name) for name in list(self.services)]  # any other
        await asyncio.gather(
            *(task for task in stopped if task is not None), return_exceptions=True
        )
        if self.upstream is not None:
            await self.upstream.close()
            self.upstream = None
        await self.close_money()
        await self.close_redis()
        if _runtimes.get(id(self.loop)) is self:
            del _runtimes[id(self.loop)]


_runtimes: dict[int, Runtime] = {}  # id(loop) -> its runtime (the loop is referenced: ids stay)


def current() -> Runtime:
    """The running loop's runtime, created on first use (O(1): a dict lookup by the loop's id)."""
    loop = asyncio.get_running_loop()
    runtime = _runtimes.get(id(loop))
    if runtime is None:
        for loop_id, old in list(_runtimes.items()):  # loops that ended (asyncio.run per call)
            if old.loop.is_closed():
                del _runtimes[loop_id]
        runtime = _runtimes[id(loop)] = Runtime(loop)
    return runtime


def start() -> Runtime:
    """Startup (Daphne's start hook, the ASGI lifespan): this loop's runtime, holding the lease."""
    from gateway import process

    runtime = current()
    process.start()
    return runtime


def reset() -> None:
    """Forget every runtime and the process-wide caches (tests: each starts afresh). A runtime
    whose loop is still open and idle is closed on it first; one of a closed loop is dropped."""
    for runtime in list(_runtimes.values()):
        loop = runtime.loop
        if not loop.is_closed() and not loop.is_running():
            loop.run_until_complete(runtime.close())
    _runtimes.clear()
    caches.clear()
