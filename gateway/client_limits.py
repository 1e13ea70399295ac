"""Requests without a valid key, limited per client address: past the limit, 429 before any lookup.

Every request that ends in a 401 (missing, malformed, unknown or revoked key) counts against its
client address (IPv6 grouped per /64) in a fixed 60-second window in Redis, named like limits.py's
(`rl:ip:<address>:r:<minute>`). Once an address has DRAGONFLY_UNAUTHENTICATED_PER_MINUTE failures
this minute, auth.py answers it 429 with limits.py's headers instead of looking its keys up. Redis
down: each process counts on its own (at most that many failures per address per process and minute).
"""

from __future__ import annotations

import functools
import ipaddress

from django.conf import settings

from gateway import kv, limits
from gateway.errors import GatewayError
from gateway.runtime import caches
from observability.metrics import GATEWAY_ADDRESS_LIMITED

# While Redis is down, caches.address_counts: address -> [failures this window, ...], at most
# 10,000 addresses (the least recently used forgotten first).


def address(scope: dict) -> str:
    """The client's address (Daphne puts X-Forwarded-For's there); an IPv6 client's /64 network."""
    client = scope.get("client")
    if not client:
        return "unknown"
    return _grouped(client[0])


@functools.lru_cache(maxsize=4096)
def _grouped(host: str) -> str:
    """Kept for the clients seen last: parsing an address costs 4.5 us, and every request asks."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return str(host)
    if ip.version == 6:
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network((ip, 64), strict=False))
    return str(ip)


async def check(address: str, *, refuse: bool = True) -> limits.Verdict:
    """429 if `address` has used up its failures this window; counts nothing. What is left
    (the rate-limit headers of a request without a valid key that does not count)."""
    window, reset_at, reset_in = limits.current_window()
    key = f"rl:ip:{address}:r:{window}"

    async def get(r) -> int:
        return int(await r.get(key) or 0)

    used = await kv.attempt("address_limit", get)
    if used is None:
        used = _local_count(address, window, add=0)
    if refuse:
        _refuse_over(used, reset_at, reset_in, counted=False)
    return _verdict(used, reset_at, reset_in)


async def count(address: str, *, refuse: bool = True) -> limits.Verdict:
    """Count one failed request of `address`; 429 instead of its 401 once past the limit (unless
    `refuse` is false). What is left, for the failure's own rate-limit headers."""
    window, reset_at, reset_in = limits.current_window()
    key = f"rl:ip:{address}:r:{window}"

    async def incr(r) -> int:
        async with r.pipeline(transaction=False) as pipe:
            pipe.incr(key)
            pipe.expire(key, limits.WINDOW * 2)
            used, _ = await pipe.execute()
        return int(used)

    used = await kv.attempt("address_limit", incr)
    if used is None:
        used = _local_count(address, window, add=1)
    if refuse:
        _refuse_over(used, reset_at, reset_in, counted=True)
    return _verdict(used, reset_at, reset_in)


def _verdict(used: int, reset_at: int, reset_in: int) -> limits.Verdict:
    limit = settings.DRAGONFLY_UNAUTHENTICATED_PER_MINUTE
    return limits.Verdict(limit, max(0, limit - used), None, None, reset_at, reset_in)


def _local_count(address: str, window: int, *, add: int) -> int:
    counts = caches.address_counts.get(address, window)
    counts[0] += add
    return counts[0]


def _refuse_over(used: int, reset_at: int, reset_in: int, *, counted: bool) -> None:
    limit = settings.DRAGONFLY_UNAUTHENTICATED_PER_MINUTE
    if (used > limit) if counted else (used >= limit):
        GATEWAY_ADDRESS_LIMITED.inc()
        verdict = _verdict(limit, reset_at, reset_in)
        raise GatewayError(
            429,
            f"Too many requests without a valid access key from your address: retry after "
            f"{reset_in} seconds (X-RateLimit-Reset). Send 'Authorization: Bearer sk-df-…' with "
            f"a current key from {settings.DRAGONFLY_BASE_URL}/dashboard/keys/",
            headers=[*limits.headers(verdict), (b"retry-after", str(reset_in).encode())],
        )
