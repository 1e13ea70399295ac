"""One place that turns REDIS_URL into clients, so the embedded substitute and Redis look alike."""

from functools import cache

import redis
import redis.asyncio as aioredis
from django.conf import settings
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

from gateway import runtime


@cache
def _fake_server():
    """The embedded substitute's one in-process server (fakeredis is imported only if used)."""
    import fakeredis

    return fakeredis.FakeServer()


def _is_fake(url: str) -> bool:
    return url.startswith("fakeredis://")


@cache
def get_redis() -> redis.Redis:
    """The synchronous client for this process (thread-safe; pooled)."""
    url = settings.REDIS_URL
    if _is_fake(url):
        import fakeredis

        return fakeredis.FakeRedis(server=_fake_server(), decode_responses=True)
    return redis.Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=2,
        socket_connect_timeout=2,
        health_check_interval=30,
    )


@cache
def _short_client(url: str, timeout: float) -> redis.Redis:
    return redis.Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
    )


def get_redis_short() -> redis.Redis:
    """A synchronous client for reads on a request's path (the routing table's health, /readyz).

    DRAGONFLY_REDIS_TIMEOUT_SECONDS to connect and per reply, and no retries: with get_redis()'s
    2 s a hung Redis (accepting connections, never answering) stalled each routing-table reload
    and /readyz probe 2 s. Callers fall back to what they last read (or report Redis down)."""
    url = settings.REDIS_URL
    if _is_fake(url):
        return get_redis()
    return _short_client(url, settings.DRAGONFLY_REDIS_TIMEOUT_SECONDS)


def get_async_redis() -> aioredis.Redis:
    """The asyncio client for the running event loop (one per loop, pools are loop-bound: the
    gateway runtime's, closed with it)."""
    state = runtime.current()
    client = state.redis
    if client is None:
        client = state.redis = _async_client()
    return client


def _async_client() -> aioredis.Redis:
    url = settings.REDIS_URL
    if _is_fake(url):
        import fakeredis

        return fakeredis.FakeAsyncRedis(server=_fake_server(), decode_responses=True)
    # Short timeouts and no retries: a hung Redis (accepting connections, never
    # answering) costs the calls in flight one timeout, then kv.py skips Redis for a
    # second. A blocking pool: past its size a command waits for a free connection instead
    # of failing at once (which under a burst would read as Redis being down). The wait is
    # as short: with Redis answering, a connection comes back within a round trip; with
    # Redis hung, each one comes back after its own timeout.
    timeout = settings.DRAGONFLY_REDIS_TIMEOUT_SECONDS
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=settings.DRAGONFLY_REDIS_POOL_SIZE,
        timeout=timeout,
        decode_responses=True,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=AsyncRetry(NoBackoff(), 0),
    )
    return aioredis.Redis(connection_pool=pool)
