"""Requests/min and tokens/min per account (the plan) and per key (its own throttle), in Redis.

One Lua script per request checks every limit and, only if all pass, counts the request and its
estimated tokens: a fixed 60-second window (keys named by the minute), shared by every process.
After the response, the token count is corrected to the actual usage. Redis down: fail open (kv.py).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from gateway import kv
from gateway.errors import GatewayError

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


async def acquire(scopes: list[Scope], estimate: int) -> Verdict:
    """Count one request of `estimate` tokens, or raise 429 (with every header) if any limit is hit."""
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
    result = await kv.attempt("rate_limit", lambda r: _SCRIPT(r, keys, args))
    if result is None:  # Redis down: fail open, report the limits as untouched
        counts = [0] * (2 * len(limited))
        allowed = True
    else:
        allowed = bool(int(result[0]))
        counts = [int(x) for x in result[1:]]
    requests: list[tuple[int, int]] = []
    tokens: list[tuple[int, int]] = []
    for i, scope in enumerate(limited):
        used_r, used_t = counts[2 * i], counts[2 * i + 1]
        if scope.requests_per_minute is not None:
            requests.append((scope.requests_per_minute, max(0, scope.requests_per_minute - used_r)))
        if scope.tokens_per_minute is not None:
            tokens.append((scope.tokens_per_minute, max(0, scope.tokens_per_minute - used_t)))
    limit_r, remaining_r = _tightest(requests)
    limit_t, remaining_t = _tightest(tokens)
    verdict = Verdict(
        limit_r,
        remaining_r,
        limit_t,
        remaining_t,
        reset_at,
        reset_in,
        counted_keys=tuple(keys[1::2]) if allowed and result is not None else (),
        estimate=estimate,
    )
    if not allowed:
        if any(s.tokens_per_minute is not None and estimate > s.tokens_per_minute for s in limited):
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
    if not verdict.counted_keys or delta == 0:
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
