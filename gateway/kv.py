"""Redis for the gateway's losable state (rate limits, stickiness, capacity), failing open.

Redis never decides money (that lives in PostgreSQL), so when it fails (refused, or hung: every
call has DRAGONFLY_REDIS_TIMEOUT_SECONDS) the gateway logs a warning, counts it in
dragonfly_gateway_redis_errors_total and serves without it: rate limits fall back to per-process
counts (limits.py), stickiness and capacity are skipped. After a failure it stops trying for a
second, then lets one call at a time try again until one succeeds, so a dead or hung Redis costs
one timeout per second per process, not one per request, and recovery needs nobody.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.exceptions import NoScriptError

from gateway.runtime import caches
from observability.metrics import GATEWAY_REDIS_ERRORS, labelled
from redis_clients.clients import get_async_redis

logger = logging.getLogger("gateway")
T = TypeVar("T")

_BACKOFF_SECONDS = 1.0
# The circuit is process state (runtime.caches): redis_down_until (after a failure, calls skip
# Redis until then), redis_failing (the last call that ended failed: after the backoff, one call
# at a time tries) and redis_trying (that one call is in flight; the others keep skipping Redis).


async def attempt(purpose: str, call: Callable[..., Awaitable[T]]) -> T | None:
    """`await call(redis)`, or None (logged, counted) when Redis is failing."""
    trial = False
    if caches.redis_failing:
        if caches.redis_trying or time.monotonic() < caches.redis_down_until:
            labelled(GATEWAY_REDIS_ERRORS, purpose).inc()
            return None
        caches.redis_trying = trial = True
    try:
        result = await call(get_async_redis())
    except Exception as exc:  # ConnectionError, TimeoutError, RedisError, OSError alike
        caches.redis_failing = True
        caches.redis_down_until = time.monotonic() + _BACKOFF_SECONDS
        labelled(GATEWAY_REDIS_ERRORS, purpose).inc()
        logger.warning("redis unavailable for %s, failing open: %s", purpose, type(exc).__name__)
        return None
    finally:
        if trial:
            caches.redis_trying = False
    caches.redis_failing = False
    return result


class Script:
    """A Lua script sent by its SHA1 (EVALSHA), and in full only when Redis does not know it yet."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()

    async def __call__(self, r, keys: list[str], args: list) -> list:
        try:
            return await r.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await r.eval(self.source, len(keys), *keys, *args)

    async def many(self, r, calls: list[tuple[list[str], list]]) -> list:
        """Run the script once per (keys, args), all in one pipelined round trip; results in order.
        Calls that found the script unknown are run again after loading it."""
        results = await self._pipelined(r, calls)
        unknown = [i for i, result in enumerate(results) if isinstance(result, NoScriptError)]
        if unknown:
            await r.script_load(self.source)
            again = await self._pipelined(r, [calls[i] for i in unknown])
            for i, result in zip(unknown, again, strict=True):
                results[i] = result
        for result in results:
            if isinstance(result, Exception):
                raise result
        return results

    async def _pipelined(self, r, calls: list[tuple[list[str], list]]) -> list:
        async with r.pipeline(transaction=False) as pipe:
            for keys, args in calls:
                pipe.evalsha(self.sha, len(keys), *keys, *args)
            return await pipe.execute(raise_on_error=False)
