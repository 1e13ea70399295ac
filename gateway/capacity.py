"""A listing's capacity: in-flight requests (concurrency_cap) and requests per minute, in Redis.

Shared by every process. In flight is a sorted set per listing, one member per request being served
with its expiry as the score: a slot is taken before the listing is called and given back when the
attempt ends (success, failure or cancellation); a process that dies mid-request leaks its slots
only until they expire (the total upstream timeout plus a minute), however busy the listing is.
Requests per minute is a counter per listing per minute, counting every attempt sent to it.

Ranking leaves capacity to the first take: one script walks the ranked candidates, skips those at
a cap and takes a slot on the first with room, atomically, in one round trip (`take_first`); the
listings it found full are dropped like a hard filter (counted as "capacity" in the 503). Failover
to a later candidate takes its slot the same way. Redis down: fail open (kv.py), like rate limits.
"""

from __future__ import annotations

import secrets
import time

from django.conf import settings

from gateway import background, kv

# KEYS: (in-flight set, minute counter) per candidate, in order. ARGV: now, expiry, member, minute
# TTL, then (cap, rpm or -1) per candidate. Takes a slot on the first candidate with room; returns
# {its 1-based position or 0, the positions of the candidates found full before it...}.
_TAKE_FIRST = kv.Script(
    """
local full = {}
for i = 1, #KEYS / 2 do
  local inflight, minute = KEYS[2*i-1], KEYS[2*i]
  local cap, rpm = tonumber(ARGV[3 + 2*i]), tonumber(ARGV[4 + 2*i])
  redis.call('ZREMRANGEBYSCORE', inflight, '-inf', ARGV[1])
  if redis.call('ZCARD', inflight) >= cap
      or (rpm >= 0 and tonumber(redis.call('GET', minute) or '0') >= rpm) then
    full[#full + 1] = i
  else
    redis.call('ZADD', inflight, ARGV[2], ARGV[3])
    redis.call('EXPIRE', inflight, math.ceil(tonumber(ARGV[2]) - tonumber(ARGV[1])))
    redis.call('INCR', minute)
    redis.call('EXPIRE', minute, ARGV[4])
    return {i, unpack(full)}
  end
end
return {0, unpack(full)}
"""
)


def _inflight_key(listing_id: int) -> str:
    return f"cap:inflight:{listing_id}"


def _minute_key(listing_id: int, now: float) -> str:
    return f"cap:rpm:{listing_id}:{int(now // 60)}"


def _slot_seconds() -> int:
    return settings.DRAGONFLY_UPSTREAM_TOTAL_TIMEOUT + 60


class Slot:
    """One request's place in a listing's capacity, given back (off the response path) on exit."""

    def __init__(self, candidate, member: str, *, taken: bool) -> None:
        self.candidate = candidate
        self.listing_id = candidate.listing_id
        self.member = member
        self.taken = taken

    def release(self) -> None:
        if self.taken:
            self.taken = False
            key, member = _inflight_key(self.listing_id), self.member
            background.spawn(kv.attempt("capacity", lambda r: r.zrem(key, member)))


async def take_first(candidates: list) -> tuple[Slot | None, set[int]]:
    """A slot on the first candidate with room (None if every one is at a cap), and the listing
    ids found full before it. Redis down: an uncounted slot on the first candidate."""
    if not candidates:
        return None, set()
    now = time.time()
    member = secrets.token_hex(8)
    keys: list[str] = []
    args: list = [now, now + _slot_seconds(), member, 120]
    for c in candidates:
        keys += [_inflight_key(c.listing_id), _minute_key(c.listing_id, now)]
        args += [c.concurrency_cap, -1 if c.requests_per_minute is None else c.requests_per_minute]
    result = await kv.attempt("capacity", lambda r: _TAKE_FIRST(r, keys, args))
    if result is None:
        return Slot(candidates[0], member, taken=False), set()
    position, *full_positions = (int(x) for x in result)
    full = {candidates[p - 1].listing_id for p in full_positions}
    if position == 0:
        return None, full
    return Slot(candidates[position - 1], member, taken=True), full


async def take(candidate) -> Slot | None:
    """A slot on this candidate, or None when it is at a cap (Redis down: an uncounted slot)."""
    slot, _ = await take_first([candidate])
    return slot
