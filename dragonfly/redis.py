"""One place that turns REDIS_URL into clients, so the embedded substitute and Redis look alike."""

from functools import cache

import redis
import redis.asyncio as aioredis
from django.conf import settings


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


_async_clients: dict[int, aioredis.Redis] = {}


def get_async_redis() -> aioredis.Redis:
    """The asyncio client for the running event loop (one per loop: pools are loop-bound)."""
    import asyncio

    loop_id = id(asyncio.get_running_loop())
    client = _async_clients.get(loop_id)
    if client is None:
        url = settings.REDIS_URL
        if _is_fake(url):
            import fakeredis

            client = fakeredis.FakeAsyncRedis(server=_fake_server(), decode_responses=True)
        else:
            # A blocking pool: past its size a command waits (up to 2 s) for a free connection
            # instead of failing at once, which under a burst of requests would read as Redis
            # being down and switch rate limits and capacity off for a second.
            pool = aioredis.BlockingConnectionPool.from_url(
                url,
                max_connections=settings.DRAGONFLY_REDIS_POOL_SIZE,
                timeout=2,
                decode_responses=True,
                socket_timeout=2,
                socket_connect_timeout=2,
            )
            client = aioredis.Redis(connection_pool=pool)
        _async_clients[loop_id] = client
    return client
