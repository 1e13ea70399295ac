"""A listing's capacity: in-flight requests (concurrency_cap) and requests per minute, in Redis.

Shared by every process. In flight is a sorted set per listing, one member per request being served
with its expiry as the score: a slot is taken before the listing is called and given back when the
attempt ends (success, failure or cancellation); a process that dies mid-request leaks its slots
only until they expire (the total upstream timeout plus a minute), however busy the listing is.
Requests per minute is a counter per listing per minute, counting every attempt sent to it.

Ranking reads both in one round trip and drops listings at their cap like a hard filter (counted
as "capacity" in the 503); taking a slot re-checks atomically, so a listing that filled up in
between is skipped to the next candidate. Redis down: fail open (kv.py), like rate limits.
"""

from __future__ import annotations

import secrets
import time

from django.conf import settings

from gateway import background, kv

# KEYS: in-flight set, minute counter. ARGV: now, expiry, member, cap, rpm (-1: none), minute TTL.
_TAKE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local cap = tonumber(ARGV[4])
local rpm = tonumber(ARGV[5])
if redis.call('ZCARD', KEYS[1]) >= cap then return 0 end
if rpm >= 0 and tonumber(redis.call('GET', KEYS[2]) or '0') >= rpm then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2]) - tonumber(ARGV[1])))
redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], ARGV[6])
return 1
"""


def _inflight_key(listing_id: int) -> str:
    return f"cap:inflight:{listing_id}"


def _minute_key(listing_id: int, now: float) -> str:
    return f"cap:rpm:{listing_id}:{int(now // 60)}"


def _slot_seconds() -> int:
    return settings.DRAGONFLY_UPSTREAM_TOTAL_TIMEOUT + 60


async def full(candidates: list) -> set[int]:
    """Listing ids at their concurrency cap or requests-per-minute limit right now."""
    if not candidates:
        return set()
    now = time.time()

    async def read(r):
        async with r.pipeline(transaction=False) as pipe:
            for c in candidates:
                pipe.zcount(_inflight_key(c.listing_id), now, "+inf")
                pipe.get(_minute_key(c.listing_id, now))
            return await pipe.execute()

    counts = await kv.attempt("capacity", read)
    if counts is None:
        return set()
    at_cap = set()
    for index, c in enumerate(candidates):
        inflight, minute = counts[2 * index], int(counts[2 * index + 1] or 0)
        if inflight >= c.concurrency_cap or (
            c.requests_per_minute is not None and minute >= c.requests_per_minute
        ):
            at_cap.add(c.listing_id)
    return at_cap


class Slot:
    """One request's place in a listing's capacity, given back (off the response path) on exit."""

    def __init__(self, candidate) -> None:
        self.listing_id = candidate.listing_id
        self.member = secrets.token_hex(8)
        self.taken = False

    def release(self) -> None:
        if self.taken:
            self.taken = False
            key, member = _inflight_key(self.listing_id), self.member
            background.spawn(kv.attempt("capacity", lambda r: r.zrem(key, member)))


async def take(candidate) -> Slot | None:
    """A slot on the listing, or None when it is at a cap (Redis down: an uncounted slot)."""
    now = time.time()
    slot = Slot(candidate)
    rpm = candidate.requests_per_minute
    args = [now, now + _slot_seconds(), slot.member, candidate.concurrency_cap, -1, 120]
    if rpm is not None:
        args[4] = rpm
    keys = [_inflight_key(candidate.listing_id), _minute_key(candidate.listing_id, now)]
    result = await kv.attempt("capacity", lambda r: r.eval(_TAKE, 2, *keys, *args))
    if result is None:
        return slot
    if not int(result):
        return None
    slot.taken = True
    return slot
