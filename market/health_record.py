"""Recording attempts into market health (Redis): one round trip per report, a second only when
the cooling state flips. The state machine and its reads are in market.health; which failures
count, and which suspend, is gateway/upstream/statuses.py.

`health_report` is the probes' (synchronous, one attempt); `report_batch_async` the gateway's
(one failure, or a second's successes of a listing at once)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from gateway.upstream import statuses
from market.health import (
    COOLDOWN_S,
    FAIL_THRESHOLD,
    FAIL_WINDOW_S,
    KEY_TTL_S,
    OUTCOMES,
    PASSIVE_SAMPLE_EVERY_S,
    SAMPLES,
    clean_error,
    redis_key,
)
from redis_clients.clients import get_async_redis, get_redis


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one report changed, for the caller to act on outside Redis."""

    key_rejected: bool
    write_sample: bool
    entered_cooling: bool
    recovered: bool


def _classify(ok: bool, status_code: int | None) -> tuple[bool, bool]:
    """(counts as failure, key rejected)."""
    if ok:
        return False, False
    return statuses.counts_against_health(status_code), statuses.key_rejected(status_code)


def _samples(values: Iterable[float | None], digits: int, *, positive: bool) -> list[float]:
    kept = [v for v in values if v is not None and (v > 0 if positive else v >= 0)]
    return [round(float(v), digits) for v in kept[-SAMPLES:]]


def _queue_report(
    pipe: Any,
    *,
    listing_id: int,
    ok: bool,
    failure: bool,
    key_rejected: bool,
    status_code: int | None,
    ttfts: Iterable[float | None],
    tpss: Iterable[float | None],
    error: str,
    now: float,
    sample_passive_success: bool,
    successes: int = 1,
) -> list[str]:
    """Queue the writes of one report (or of `successes` successes at once, with their samples
    oldest first); returns the names of the results to read back."""
    h = redis_key(listing_id)
    names: list[str] = []
    if status_code is not None:
        pipe.hset(h, "status_code", int(status_code))
        names.append("-")
    if ok:
        pipe.hset(h, "ok_at", repr(now))
        names.append("-")
        for part, values in (
            ("ttft", _samples(ttfts, 1, positive=False)),
            ("tps", _samples(tpss, 2, positive=True)),
        ):
            if values:
                pipe.lpush(redis_key(listing_id, part), *values)
                pipe.ltrim(redis_key(listing_id, part), 0, SAMPLES - 1)
                pipe.expire(redis_key(listing_id, part), KEY_TTL_S)
                names += ["-", "-", "-"]
        if sample_passive_success:
            pipe.set(redis_key(listing_id, "sampled"), 1, nx=True, ex=PASSIVE_SAMPLE_EVERY_S)
            names.append("sampled")
    if ok or failure:
        outcomes = ["1"] * min(successes, OUTCOMES) if ok else ["0"]
        pipe.lpush(redis_key(listing_id, "out"), *outcomes)
        pipe.ltrim(redis_key(listing_id, "out"), 0, OUTCOMES - 1)
        pipe.expire(redis_key(listing_id, "out"), KEY_TTL_S)
        names += ["-", "-", "-"]
    if failure:
        fails = redis_key(listing_id, "fails")
        pipe.hset(h, mapping={"fail_at": repr(now), "error": clean_error(error)})
        pipe.zadd(fails, {f"{now!r}:{id(pipe)}:{len(names)}": now})
        pipe.zremrangebyscore(fails, "-inf", now - FAIL_WINDOW_S)
        pipe.zcard(fails)
        pipe.expire(fails, max(1, int(FAIL_WINDOW_S * 2) + 1))
        names += ["-", "-", "-", "fail_count", "-"]
        if key_rejected:
            pipe.hset(h, "suspended", "1")
            names.append("-")
    pipe.hget(h, "cool_until")
    names.append("cool_until")
    pipe.expire(h, KEY_TTL_S)
    names.append("-")
    return names


def _decide(results: dict[str, Any], *, ok: bool, failure: bool, now: float) -> tuple[str, bool]:
    """What the second round trip (if any) must do: ("arm" | "clear" | "", entered_cooling)."""
    cool_until = float(results["cool_until"]) if results.get("cool_until") else None
    if ok and cool_until is not None and now >= cool_until:
        return "clear", False
    if failure:
        count = int(results.get("fail_count") or 0)
        if cool_until is None and count >= FAIL_THRESHOLD:
            return "arm", True
        if cool_until is not None and now >= cool_until:
            return "arm", False  # the recovery attempt failed: cool down again
    return "", False


def _queue_second(pipe: Any, listing_id: int, action: str, now: float) -> None:
    h = redis_key(listing_id)
    if action == "arm":
        pipe.hset(h, "cool_until", repr(now + COOLDOWN_S))
    elif action == "clear":
        pipe.hdel(h, "cool_until", "fail_at", "error")
        pipe.delete(redis_key(listing_id, "fails"))


def _prepare(ok: bool, status_code: int | None) -> tuple[bool, bool, float]:
    failure, key_rejected = _classify(ok, status_code)
    return failure, key_rejected, time.time()


def health_report(
    *,
    listing_id: int,
    ok: bool,
    status_code: int | None,
    ttft_ms: float | None,
    tokens_per_second: float | None,
    error: str = "",
    passive: bool,
) -> Outcome:
    """Record one attempt in Redis (one round trip, two when the cooling state flips)."""
    failure, key_rejected, now = _prepare(ok, status_code)
    pipe = get_redis().pipeline(transaction=True)
    names = _queue_report(
        pipe,
        listing_id=listing_id,
        ok=ok,
        failure=failure,
        key_rejected=key_rejected,
        status_code=status_code,
        ttfts=(ttft_ms,),
        tpss=(tokens_per_second,),
        error=error,
        now=now,
        sample_passive_success=passive and ok,
    )
    results = dict(zip(names, pipe.execute(), strict=True))
    action, entered = _decide(results, ok=ok, failure=failure, now=now)
    if action:
        second = get_redis().pipeline(transaction=True)
        _queue_second(second, listing_id, action, now)
        second.execute()
    return Outcome(
        key_rejected=key_rejected,
        write_sample=failure or bool(results.get("sampled")),
        entered_cooling=entered,
        recovered=action == "clear",
    )


async def report_batch_async(
    *,
    listing_id: int,
    ok: bool,
    status_code: int | None,
    ttfts: Iterable[float | None],
    tpss: Iterable[float | None],
    error: str,
    passive: bool,
    successes: int = 1,
) -> Outcome:
    failure, key_rejected, now = _prepare(ok, status_code)
    client = get_async_redis()
    pipe = client.pipeline(transaction=True)
    names = _queue_report(
        pipe,
        listing_id=listing_id,
        ok=ok,
        failure=failure,
        key_rejected=key_rejected,
        status_code=status_code,
        ttfts=ttfts,
        tpss=tpss,
        error=error,
        now=now,
        sample_passive_success=passive and ok,
        successes=successes,
    )
    results = dict(zip(names, await pipe.execute(), strict=True))
    action, entered = _decide(results, ok=ok, failure=failure, now=now)
    if action:
        second = client.pipeline(transaction=True)
        _queue_second(second, listing_id, action, now)
        await second.execute()
    return Outcome(
        key_rejected=key_rejected,
        write_sample=failure or bool(results.get("sampled")),
        entered_cooling=entered,
        recovered=action == "clear",
    )
