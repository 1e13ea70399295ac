"""Requests/min and tokens/min per account (the plan) and per key (its own throttle), in Redis.

One Lua script per request checks every limit and, only if all pass, counts the request and its
estimated tokens: a fixed 60-second window (keys named by the minute), shared by every process.
After the response, the token count is corrected to the actual usage.

Redis failing (kv.py): each process counts on its own, in the same windows, allowing each scope
ceil(limit / DRAGONFLY_GATEWAY_PROCESSES), so the fleet stays within the plan. What a process
counted on its own is added to Redis by its first call that reaches Redis again, so the counts
after recovery include the outage's. Bound: docs/gateway.md, "When Redis is down".
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from django.conf import settings

from gateway import kv
from gateway.errors import GatewayError
from gateway.runtime import caches

WINDOW = 60
UNLIMITED = -1

# KEYS: (requests, tokens) per scope. ARGV: estimate, ttl, then (request limit, token limit) per
# scope, -1 for unlimited. Returns {allowed, requests_1, tokens_1, requests_2, tokens_2, ...}:
# the counts after this request if allowed, the counts without it if not.
_SCRIPT = kv.Script(
    """
local est = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local n = #KEYS / 2
local out = {1}
for i = 1, n do
  local r = tonumber(redis.call('GET', KEYS[2*i-1]) or '0')
  local t = tonumber(redis.call('GET', KEYS[2*i]) or '0')
  local rl = tonumber(ARGV[1 + 2*i])
  local tl = tonumber(ARGV[2 + 2*i])
  if (rl >= 0 and r + 1 > rl) or (tl >= 0 and t + est > tl) then out[1] = 0 end
  out[2*i] = r
  out[2*i+1] = t
end
if out[1] == 1 then
  for i = 1, n do
    out[2*i] = redis.call('INCR', KEYS[2*i-1])
    redis.call('EXPIRE', KEYS[2*i-1], ttl)
    out[2*i+1] = redis.call('INCRBY', KEYS[2*i], est)
    redis.call('EXPIRE', KEYS[2*i], ttl)
  end
end
return out
"""
)


# While Redis fails, per scope (caches.rate_counts): [requests, tokens, of which not yet added to
# Redis: requests, tokens]. 20,000 scopes is 10,000 buyers (account + key) a minute per process.


@dataclass(frozen=True, slots=True)
class Scope:
    name: str  # "u:<user id>" or "k:<key id>"
    requests_per_minute: int | None
    tokens_per_minute: int | None


@dataclass(slots=True)
class Verdict:
    """What the headers report: the tightest limit in each dimension, and the window's end."""

    limit_requests: int | None
    remaining_requests: int | None
    limit_tokens: int | None
    remaining_tokens: int | None
    reset_at: int  # unix seconds when the window ends
    reset_in: int  # seconds until then
    counted_keys: tuple[str, ...] = ()  # token counters to correct after the response
    estimate: int = 0
    counted_locally: tuple[str, ...] = ()  # scopes counted in this process (Redis failing)
    window: int = 0


def scopes_for(record: dict) -> list[Scope]:
    plan = record.get("plan") or {}
    return [
        Scope(
            f"u:{record['user_id']}", plan.get("requests_per_minute"), plan.get("tokens_per_minute")
        ),
        Scope(
            f"k:{record['key_id']}",
            record.get("key_requests_per_minute"),
            record.get("key_tokens_per_minute"),
        ),
    ]


def _tightest(pairs: list[tuple[int, int]]) -> tuple[int | None, int | None]:
    """(limit, remaining) of the scope with the least left; (None, None) when unlimited."""
    if not pairs:
        return None, None
    return min(pairs, key=lambda pair: pair[1])


def current_window() -> tuple[int, int, int]:
    """(this window's number, the unix second it ends, seconds until then: at least 1)."""
    now = time.time()
    window = int(now // WINDOW)
    reset_at = (window + 1) * WINDOW
    return window, reset_at, max(1, math.ceil(reset_at - now))


def _share(limit: int | None) -> int | None:
    """A process's part of `limit` while Redis fails: ceil(limit / processes)."""
    if limit is None:
        return None
    return math.ceil(limit / settings.DRAGONFLY_GATEWAY_PROCESSES)


def _acquire_locally(limited: list[Scope], window: int, estimate: int) -> tuple[bool, list[int]]:
    """The Lua script's check and count, on this process's counters and shares of the limits."""
    counters = [caches.rate_counts.get(scope.name, window) for scope in limited]
    allowed = True
    for scope, c in zip(limited, counters, strict=True):
        rl, tl = _share(scope.requests_per_minute), _share(scope.tokens_per_minute)
        if (rl is not None and c[0] + 1 > rl) or (tl is not None and c[1] + estimate > tl):
            allowed = False
    if allowed:
        for c in counters:
            c[0] += 1
            c[1] += estimate
            c[2] += 1
            c[3] += estimate
    return allowed, [n for c in counters for n in c[:2]]


async def _add_local_counts(r, window: int) -> None:
    """Add what this process counted on its own this window to Redis (once Redis answers again).
    Taken before the round trip so concurrent calls add each count once; put back if it fails."""
    pending = [(name, c[2], c[3]) for name, c in caches.rate_counts.items(window) if c[2] or c[3]]
    if not pending:
        return
    for name, requests, tokens in pending:
        c = caches.rate_counts.get(name, window)
        c[2] -= requests
        c[3] -= tokens
    try:
        async with r.pipeline(transaction=False) as pipe:
            for name, requests, tokens in pending:
                for key, amount in (
                    (f"rl:{name}:r:{window}", requests),
                    (f"rl:{name}:t:{window}", tokens),
                ):
                    pipe.incrby(key, amount)
                    pipe.expire(key, WINDOW * 2)
            await pipe.execute()
    except BaseException:
        if window == caches.rate_counts.window:
            for name, requests, tokens in pending:
                c = caches.rate_counts.get(name, window)
                c[2] += requests
                c[3] += tokens
        raise


async def acquire(scopes: list[Scope], estimate: int, *, refuse: bool = True) -> Verdict:
    """Count one request of `estimate` tokens, or raise 429 (with every header) if any limit is hit
    (with `refuse` false: count nothing then, and return what the headers report)."""
    window, reset_at, reset_in = current_window()
    limited = [
        s for s in scopes if s.requests_per_minute is not None or s.tokens_per_minute is not None
    ]
    if not limited:
        return Verdict(None, None, None, None, reset_at, reset_in)
    keys: list[str] = []
    args: list[int] = [estimate, WINDOW * 2]
    for scope in limited:
        keys += [f"rl:{scope.name}:r:{window}", f"rl:{scope.name}:t:{window}"]
        args += [
            UNLIMITED if scope.requests_per_minute is None else scope.requests_per_minute,
            UNLIMITED if scope.tokens_per_minute is None else scope.tokens_per_minute,
        ]

    async def count(r) -> list:
        await _add_local_counts(r, window)
        return await _SCRIPT(r, keys, args)

    result = await kv.attempt("rate_limit", count)
    if result is None:  # Redis failing: this process's counters, against its share of each limit
        allowed, counts = _acquire_locally(limited, window, estimate)
        limits = [(_share(s.requests_per_minute), _share(s.tokens_per_minute)) for s in limited]
    else:
        allowed = bool(int(result[0]))
        counts = [int(x) for x in result[1:]]
        limits = [(s.requests_per_minute, s.tokens_per_minute) for s in limited]
    requests: list[tuple[int, int]] = []
    tokens: list[tuple[int, int]] = []
    for i, scope in enumerate(limited):
        used_r, used_t = counts[2 * i], counts[2 * i + 1]
        allowed_r, allowed_t = limits[i]
        # The plan's limit is reported; what remains is what this process will still allow.
        if scope.requests_per_minute is not None and allowed_r is not None:
            requests.append((scope.requests_per_minute, max(0, allowed_r - used_r)))
        if scope.tokens_per_minute is not None and allowed_t is not None:
            tokens.append((scope.tokens_per_minute, max(0, allowed_t - used_t)))
    limit_r, remaining_r = _tightest(requests)
    limit_t, remaining_t = _tightest(tokens)
    counted = allowed and result is not None
    verdict = Verdict(
        limit_r,
        remaining_r,
        limit_t,
        remaining_t,
        reset_at,
        reset_in,
        counted_keys=tuple(keys[1::2]) if counted else (),
        estimate=estimate,
        counted_locally=tuple(s.name for s in limited) if allowed and result is None else (),
        window=window,
    )
    if not allowed and refuse:
        if any(t is not None and estimate > t for _, t in limits):
            message = (
                f"This request may use up to {estimate} tokens, more than your tokens-per-minute "
                "limit allows: lower max_tokens or shorten the prompt."
            )
        else:
            message = (
                f"Rate limit exceeded: too many requests or tokens this minute. Retry after "
                f"{reset_in} seconds (X-RateLimit-Reset)."
            )
        raise GatewayError(
            429, message, headers=[*headers(verdict), (b"retry-after", str(reset_in).encode())]
        )
    return verdict


async def correct(verdict: Verdict, actual_tokens: int) -> None:
    """Replace the up-front estimate by the tokens actually used (after the response)."""
    delta = actual_tokens - verdict.estimate
    if delta == 0:
        return
    if verdict.counted_locally and verdict.window == caches.rate_counts.window:
        for name in verdict.counted_locally:
            c = caches.rate_counts.get(name, verdict.window)
            c[1] += delta
            c[3] += delta
    if not verdict.counted_keys:
        return

    async def apply(r):
        async with r.pipeline(transaction=False) as pipe:
            for key in verdict.counted_keys:
                pipe.incrby(key, delta)
                pipe.expire(key, WINDOW * 2)
            await pipe.execute()

    await kv.attempt("rate_limit", apply)


def _value(number: int | None) -> bytes:
    return b"unlimited" if number is None else str(number).encode()


def headers(verdict: Verdict) -> list[tuple[bytes, bytes]]:
    """X-RateLimit-Remaining/Reset (the seed) and OpenAI's six x-ratelimit-* headers."""
    remaining = verdict.remaining_requests
    reset_in = f"{verdict.reset_in}s".encode()
    return [
        (b"x-ratelimit-remaining", _value(remaining)),
        (b"x-ratelimit-reset", str(verdict.reset_at).encode()),
        (b"x-ratelimit-limit-requests", _value(verdict.limit_requests)),
        (b"x-ratelimit-limit-tokens", _value(verdict.limit_tokens)),
        (b"x-ratelimit-remaining-requests", _value(remaining)),
        (b"x-ratelimit-remaining-tokens", _value(verdict.remaining_tokens)),
        (b"x-ratelimit-reset-requests", reset_in),
        (b"x-ratelimit-reset-tokens", reset_in),
    ]
