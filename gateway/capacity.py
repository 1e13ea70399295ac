"""A listing's capacity: in-flight requests (concurrency_cap) and requests per minute, in Redis.

Shared by every process. In flight is a sorted set per listing, one member per request being served
with its expiry as the score: a slot is taken before the listing is called and given back when the
attempt ends (success, failure or cancellation); a process that dies mid-request leaks its slots
only until its peers reap it (a slot's member starts with its process id: reaper.py), or at worst
until they expire (the total upstream timeout plus a minute), however busy the listing is.
Requests per minute is a counter per listing per minute, counting every attempt sent to it.

Ranking leaves capacity to the first take: one script walks the ranked candidates, skips those at
a cap and takes a slot on the first with room, atomically, in one round trip (`take_first`); the
listings it found full are dropped like a hard filter (counted as "capacity" in the 503). Failover
to a later candidate takes its slot the same way. Redis down: fail open (kv.py), like rate limits.
Concurrent takes share one pipelined round trip (event_loop/batching.py); a slot taken for a
request that was cancelled meanwhile is given back at once.

On a listing capped by concurrency alone, a slot whose request ended is not given back at once:
it stays counted in Redis, in this process's share of the listing, and the process's next
request there takes it with no round trip (capacity_shares.py; DRAGONFLY_CAPACITY_SHARES). The
process's sweep gives back what its share did not use for a second.
"""

from __future__ import annotations

import logging
import secrets
import time

from django.conf import settings

from event_loop.batching import Batcher
from gateway import background, kv, process, runtime
from gateway.capacity_shares import Shares
from redis_clients.clients import get_redis

logger = logging.getLogger("gateway")

# KEYS: (in-flight set, minute counter) per candidate, in order, then the in-flight set of each
# slot given back since the last call. ARGV: now, expiry, member, minute TTL, candidate count, then
# (cap, rpm or -1) per candidate, then the given-back members. Gives those slots back, then takes
# a slot on the first candidate with room; returns {its 1-based position or 0, its slots in use
# with this one, the positions of the candidates found full before it...}, a position negated
# when its requests per minute (not its concurrency) was the cap.
_TAKE_FIRST = kv.Script(
    """
local n = tonumber(ARGV[5])
for j = 2 * n + 1, #KEYS do
  redis.call('ZREM', KEYS[j], ARGV[5 + j])
end
local full = {}
for i = 1, n do
  local inflight, minute = KEYS[2*i-1], KEYS[2*i]
  local cap, rpm = tonumber(ARGV[4 + 2*i]), tonumber(ARGV[5 + 2*i])
  redis.call('ZREMRANGEBYSCORE', inflight, '-inf', ARGV[1])
  if redis.call('ZCARD', inflight) >= cap then
    full[#full + 1] = i
  elseif rpm >= 0 and tonumber(redis.call('GET', minute) or '0') >= rpm then
    full[#full + 1] = -i
  else
    redis.call('ZADD', inflight, ARGV[2], ARGV[3])
    redis.call('EXPIRE', inflight, math.ceil(tonumber(ARGV[2]) - tonumber(ARGV[1])))
    redis.call('INCR', minute)
    redis.call('EXPIRE', minute, ARGV[4])
    return {i, redis.call('ZCARD', inflight), unpack(full)}
  end
end
return {0, 0, unpack(full)}
"""
)

# Slots given back ride along with the next take (no round trip of their own); with no take
# within RELEASE_WITHIN seconds they are sent on their own. A slot so looks busy that much longer.
RELEASE_WITHIN = 0.05  # the released slots and their timer are the runtime's (capacity_*)


_INFLIGHT = "cap:inflight:"


def _inflight_key(listing_id: int) -> str:
    return f"{_INFLIGHT}{listing_id}"


def _minute_key(listing_id: int, now: float) -> str:
    return f"cap:rpm:{listing_id}:{int(now // 60)}"


def _slot_seconds() -> int:
    return settings.DRAGONFLY_UPSTREAM_TOTAL_TIMEOUT + 60


def _shared(candidate) -> bool:
    """Whether this listing's slots may go to the process's share when their requests end."""
    return candidate.requests_per_minute is None and settings.DRAGONFLY_CAPACITY_SHARES


def _keepable(candidate, in_use: int) -> bool:
    """A slot taken in Redis may be kept if, with it, the listing used at most half its cap. Every
    share's slots are in use in Redis, so all shares together keep at most half of any listing;
    the other half is taken request by request, first come first served, by every process."""
    return _shared(candidate) and in_use * 2 <= candidate.concurrency_cap


def _shares() -> Shares:
    return runtime.current().capacity_shares


class Slot:
    """One request's place in a listing's capacity, given back (off the response path) or kept
    in the process's share on exit."""

    def __init__(
        self, candidate, member: str, expires_at: float, *, taken: bool, keepable: bool = False
    ) -> None:
        self.candidate = candidate
        self.listing_id = candidate.listing_id
        self.member = member
        self.expires_at = expires_at  # when Redis drops it unless renewed
        self.taken = taken
        self.keepable = keepable  # goes to the process's share when its request ends

    def release(self) -> None:
        if not self.taken:
            return
        self.taken = False
        if self.keepable and _shares().keep(
            self.listing_id, self.member, self.expires_at, self.candidate.concurrency_cap
        ):
            return
        _release(_inflight_key(self.listing_id), self.member)


def _release(inflight_key: str, member: str) -> None:
    """Queue a slot to be given back with the next take, or on its own within RELEASE_WITHIN."""
    state = runtime.current()
    state.capacity_released.append((inflight_key, member))
    if state.capacity_flush is None:
        state.capacity_flush = state.loop.call_later(RELEASE_WITHIN, _send_released)


def _take_released() -> list[tuple[str, str]]:
    state = runtime.current()
    if state.capacity_flush is not None:
        state.capacity_flush.cancel()
        state.capacity_flush = None
    batch = state.capacity_released
    if batch:
        state.capacity_released = []
    return batch


def _send_released() -> None:
    batch = _take_released()
    if batch:
        background.spawn(kv.attempt("capacity", lambda r: _TAKE_FIRST(r, *_script_args([], batch))))


def sweep() -> None:
    """Give back the slots each share left unused since the last sweep and renew the expiry of
    those it keeps (the process's lease loop, about once a second)."""
    unused, renew = _shares().sweep(time.time(), _slot_seconds())
    for listing_id, member in unused:
        _release(_inflight_key(listing_id), member)
    if renew:
        background.spawn(kv.attempt("capacity", lambda r: _renew(r, renew)))


async def _renew(r, renew: list[tuple[int, str, float]]) -> None:
    """A kept slot's new expiry (one it lost meanwhile, as to a flushed Redis, is counted again)."""
    async with r.pipeline(transaction=False) as pipe:
        for listing_id, member, expires_at in renew:
            key = _inflight_key(listing_id)
            pipe.zadd(key, {member: expires_at})
            pipe.expire(key, _slot_seconds())
        await pipe.execute()


async def flush() -> None:
    """Give back every released slot and every share's free slots now (shutdown and tests)."""
    for listing_id, member in _shares().take_all():
        _release(_inflight_key(listing_id), member)
    batch = _take_released()
    if batch:
        await kv.attempt("capacity", lambda r: _TAKE_FIRST(r, *_script_args([], batch)))


def _script_args(candidates: list, released: list[tuple[str, str]], member: str = "") -> tuple:
    now = time.time()
    keys: list[str] = []
    caps: list = []
    for c in candidates:
        keys += [_inflight_key(c.listing_id), _minute_key(c.listing_id, now)]
        caps += [c.concurrency_cap, -1 if c.requests_per_minute is None else c.requests_per_minute]
    keys += [key for key, _ in released]
    args = [now, now + _slot_seconds(), member, 120, len(candidates), *caps]
    args += [m for _, m in released]
    return keys, args


async def _take_batch(calls: list[tuple[list[str], list]]) -> list:
    """One round trip for every take queued meanwhile; None for each when Redis is down."""
    if len(calls) == 1:
        keys, args = calls[0]
        return [await kv.attempt("capacity", lambda r: _TAKE_FIRST(r, keys, args))]
    results = await kv.attempt("capacity", lambda r: _TAKE_FIRST.many(r, calls))
    return [None] * len(calls) if results is None else results


def _give_back(call: tuple[list[str], list], result) -> None:
    """A take whose request was cancelled before it saw the result: return the slot it got."""
    position = int(result[0]) if result else 0
    if position:
        keys, args = call
        _release(keys[2 * position - 2], args[2])


def _takes() -> Batcher:
    state = runtime.current()
    takes = state.capacity_takes
    if takes is None:
        takes = state.capacity_takes = Batcher(_take_batch, max_items=64, orphaned=_give_back)
    return takes


CONCURRENCY = "capacity"  # at its concurrency cap (routing.REASONS' name, which covers both)
REQUESTS_PER_MINUTE = "requests_per_minute"


def kept(candidates: list) -> Slot | None:
    """A slot of the best-ranked candidate that this process kept, taken in memory; None: none."""
    if not candidates or not _shared(candidates[0]):
        return None
    slot = _shares().take(candidates[0].listing_id)
    return None if slot is None else Slot(candidates[0], *slot, taken=True, keepable=True)


async def take_first(candidates: list) -> tuple[Slot | None, dict[int, str]]:
    """A slot on the first candidate with room (None if every one is at a cap), and the listings
    found full before it, each with the cap it was at (CONCURRENCY or REQUESTS_PER_MINUTE).
    Redis down: an uncounted slot on the first candidate."""
    slot = kept(candidates)
    if slot is not None or not candidates:
        return slot, {}
    first = candidates[0]
    member = f"{process.ID}:{secrets.token_hex(8)}"
    keys, args = _script_args(candidates, _take_released(), member)
    result = await _takes().submit((keys, args))
    if result is None:
        return Slot(first, member, 0.0, taken=False), {}
    position, in_use, *full_positions = (int(x) for x in result)
    full = {
        candidates[abs(p) - 1].listing_id: CONCURRENCY if p > 0 else REQUESTS_PER_MINUTE
        for p in full_positions
    }
    if position == 0:
        return None, full
    chosen = candidates[position - 1]
    keepable = _keepable(chosen, in_use)
    if keepable:
        _shares().taken(chosen.listing_id)
    return Slot(chosen, member, args[1], taken=True, keepable=keepable), full


async def take(candidate) -> Slot | None:
    """A slot on this candidate, or None when it is at a cap (Redis down: an uncounted slot)."""
    slot, _ = await take_first([candidate])
    return slot


def release_process(process_id: str) -> int:
    """Give back every slot a dead process held, in every listing (the reaper's, synchronous).
    Returns how many; Redis down: 0 (they expire instead)."""
    r = get_redis()
    released = 0
    try:
        for key in r.scan_iter(match=_INFLIGHT + "*", count=1000):
            members = [m for m, _ in r.zscan_iter(key, match=f"{process_id}:*")]
            if members:
                released += r.zrem(key, *members)
    except Exception as exc:  # ConnectionError, TimeoutError alike
        logger.warning("capacity slots of %s not given back (redis: %r)", process_id, exc)
    return released
