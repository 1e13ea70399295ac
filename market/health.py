"""Per-listing health in Redis, fed by active probes and the gateway's passive reports.

State machine (docs/health.md):
- unknown: nothing recorded yet.
- healthy: successes recorded, no failure in the last DEGRADED_WINDOW_S, p50 TTFT not slow.
- degraded: a failure in the last DEGRADED_WINDOW_S, or p50 TTFT above SLOW_TTFT_MS. Still routed.
- cooling_down: FAIL_THRESHOLD failures within FAIL_WINDOW_S. Not routed. Lasts COOLDOWN_S at
  least; after that the first success (a recovery probe) makes it healthy again, a failure re-arms it.
- suspended: the upstream rejected the key or reported no balance (401/402/403). The listing's
  status becomes suspended too (services.listing_suspend, the seller is emailed once); only a
  re-key or an operator clears it.
A seller's pause is a listing status, not a health state: nothing here changes a listing's status
except through services that only move active listings (conditional updates).

Every key starts with ``df:mh:<listing id>``. No value ever holds an upstream key: errors stored
here are our own short descriptions, or the gateway's passed through dragonfly.logs.redact.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from dragonfly.logs import redact
from dragonfly.redis import get_async_redis, get_redis

logger = logging.getLogger(__name__)

FAIL_THRESHOLD = 3
FAIL_WINDOW_S = 60
COOLDOWN_S = 30
DEGRADED_WINDOW_S = 120
SLOW_TTFT_MS = 10_000.0
SAMPLES = 50  # TTFT / throughput samples kept for percentiles
OUTCOMES = 100  # recent outcomes kept for uptime
PASSIVE_SAMPLE_EVERY_S = 60  # at most one passive-success HealthSample per listing per minute
KEY_TTL_S = 7 * 24 * 3600

# Upstream statuses that mean "this key can't be used": suspend at once.
KEY_REJECTED_STATUSES = frozenset({401, 402, 403})
# Other 4xx are the request's fault (bad parameters, unknown model for the buyer's body, too large):
# they say nothing about the listing's health.
CLIENT_FAULT_STATUSES = frozenset({400, 404, 409, 413, 415, 422})

HEALTHY = "healthy"
DEGRADED = "degraded"
COOLING_DOWN = "cooling_down"
SUSPENDED = "suspended"
UNKNOWN = "unknown"


def _key(listing_id: int, part: str = "") -> str:
    return f"df:mh:{int(listing_id)}" + (f":{part}" if part else "")


def lock_key(listing_id: int) -> str:
    return f"df:probe:lock:{int(listing_id)}"


@dataclass(frozen=True, slots=True)
class HealthView:
    state: str
    ttft_p50_ms: float | None
    ttft_p95_ms: float | None
    tps_p50: float | None
    tps_p95: float | None
    uptime: float | None  # share of recent attempts that succeeded, 0..1
    last_error: str
    last_status_code: int | None
    last_ok_at: float | None
    last_fail_at: float | None
    cooling_until: float | None


def _percentile(values: list[float], pct: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    ordered = sorted(values)
    rank = pct / 100 * (len(ordered) - 1)
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _floats(raw: Iterable[Any]) -> list[float]:
    out = []
    for item in raw or ():
        try:
            out.append(float(item))
        except (TypeError, ValueError):
            continue
    return out


def _view(h: dict, ttfts: list[float], tpss: list[float], outcomes: list[str], now: float):
    ok_at = float(h["ok_at"]) if h.get("ok_at") else None
    fail_at = float(h["fail_at"]) if h.get("fail_at") else None
    cool_until = float(h["cool_until"]) if h.get("cool_until") else None
    ttft_p50 = _percentile(ttfts, 50)
    if h.get("suspended"):
        state = SUSPENDED
    elif cool_until:
        state = COOLING_DOWN
    elif ok_at is None and fail_at is None:
        state = UNKNOWN
    elif (fail_at and now - fail_at < DEGRADED_WINDOW_S) or (
        ttft_p50 is not None and ttft_p50 > SLOW_TTFT_MS
    ):
        state = DEGRADED
    else:
        state = HEALTHY
    status = h.get("status_code")
    return HealthView(
        state=state,
        ttft_p50_ms=ttft_p50,
        ttft_p95_ms=_percentile(ttfts, 95),
        tps_p50=_percentile(tpss, 50),
        tps_p95=_percentile(tpss, 95),
        uptime=(outcomes.count("1") / len(outcomes)) if outcomes else None,
        last_error=h.get("error", ""),
        last_status_code=int(status) if status else None,
        last_ok_at=ok_at,
        last_fail_at=fail_at,
        cooling_until=cool_until,
    )


def _queue_reads(pipe: Any, listing_id: int) -> None:
    pipe.hgetall(_key(listing_id))
    pipe.lrange(_key(listing_id, "ttft"), 0, SAMPLES - 1)
    pipe.lrange(_key(listing_id, "tps"), 0, SAMPLES - 1)
    pipe.lrange(_key(listing_id, "out"), 0, OUTCOMES - 1)


def health_many(listing_ids: Iterable[int]) -> dict[int, HealthView]:
    """The health of many listings in one Redis round trip."""
    ids = list(listing_ids)
    if not ids:
        return {}
    pipe = get_redis().pipeline(transaction=False)
    for listing_id in ids:
        _queue_reads(pipe, listing_id)
    raw = pipe.execute()
    now = time.time()
    views = {}
    for i, listing_id in enumerate(ids):
        h, ttft, tps, out = raw[4 * i : 4 * i + 4]
        views[listing_id] = _view(h or {}, _floats(ttft), _floats(tps), list(out or []), now)
    return views


def health_get(listing_id: int) -> HealthView:
    return health_many([listing_id])[listing_id]


def health_reset(listing_id: int) -> None:
    """Forget everything about a listing (a new key is a new channel)."""
    get_redis().delete(*(_key(listing_id, part) for part in ("", "fails", "ttft", "tps", "out")))


def clean_error(error: str) -> str:
    return redact(str(error or ""))[:200]


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
    if status_code in KEY_REJECTED_STATUSES:
        return True, True
    if status_code in CLIENT_FAULT_STATUSES:
        return False, False
    return True, False


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
    h = _key(listing_id)
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
                pipe.lpush(_key(listing_id, part), *values)
                pipe.ltrim(_key(listing_id, part), 0, SAMPLES - 1)
                pipe.expire(_key(listing_id, part), KEY_TTL_S)
                names += ["-", "-", "-"]
        if sample_passive_success:
            pipe.set(_key(listing_id, "sampled"), 1, nx=True, ex=PASSIVE_SAMPLE_EVERY_S)
            names.append("sampled")
    if ok or failure:
        outcomes = ["1"] * min(successes, OUTCOMES) if ok else ["0"]
        pipe.lpush(_key(listing_id, "out"), *outcomes)
        pipe.ltrim(_key(listing_id, "out"), 0, OUTCOMES - 1)
        pipe.expire(_key(listing_id, "out"), KEY_TTL_S)
        names += ["-", "-", "-"]
    if failure:
        fails = _key(listing_id, "fails")
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
    h = _key(listing_id)
    if action == "arm":
        pipe.hset(h, "cool_until", repr(now + COOLDOWN_S))
    elif action == "clear":
        pipe.hdel(h, "cool_until", "fail_at", "error")
        pipe.delete(_key(listing_id, "fails"))


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


async def health_report_async(
    *,
    listing_id: int,
    ok: bool,
    status_code: int | None,
    ttft_ms: float | None,
    tokens_per_second: float | None,
    error: str = "",
    passive: bool,
) -> Outcome:
    return await _report_async(
        listing_id=listing_id,
        ok=ok,
        status_code=status_code,
        ttfts=(ttft_ms,),
        tpss=(tokens_per_second,),
        error=error,
        passive=passive,
    )


async def _report_async(
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


def _passive_followup(
    *, listing_id: int, outcome: Outcome, ok: bool, status_code, ttft_ms, tps, error: str
) -> None:
    """The database side of a passive report: a history sample, and suspension on a rejected key."""
    from market import services

    try:
        if outcome.write_sample:
            services.health_sample_record(
                listing_id=listing_id,
                source="passive",
                ok=ok,
                status_code=status_code,
                ttft_ms=ttft_ms,
                tokens_per_second=tps,
                error=clean_error(error),
            )
        if outcome.key_rejected:
            services.listing_suspend(
                listing_id=listing_id, reason=services.key_rejected_reason(status_code)
            )
    except Exception:
        logger.exception("could not record passive health of listing #%s", listing_id)


def _in_thread(**kwargs: Any) -> None:
    from django.db import close_old_connections

    try:
        _passive_followup(**kwargs)
    finally:
        close_old_connections()


def attempt_report(
    *,
    listing_id: int,
    ok: bool,
    status_code: int | None,
    ttft_ms: float | None,
    tokens_per_second: float | None,
    error: str = "",
) -> None:
    """The passive signal after each upstream attempt, from synchronous code."""
    outcome = health_report(
        listing_id=listing_id,
        ok=ok,
        status_code=status_code,
        ttft_ms=ttft_ms,
        tokens_per_second=tokens_per_second,
        error=error,
        passive=True,
    )
    if outcome.write_sample or outcome.key_rejected:
        _passive_followup(
            listing_id=listing_id,
            outcome=outcome,
            ok=ok,
            status_code=status_code,
            ttft_ms=ttft_ms,
            tps=tokens_per_second,
            error=error,
        )


_background: set[asyncio.Future] = set()


async def attempt_report_async(
    *,
    listing_id: int,
    ok: bool,
    status_code: int | None,
    ttft_ms: float | None,
    tokens_per_second: float | None,
    error: str = "",
) -> None:
    """The async twin: Redis only on the event loop; any database write goes to a worker thread."""
    outcome = await health_report_async(
        listing_id=listing_id,
        ok=ok,
        status_code=status_code,
        ttft_ms=ttft_ms,
        tokens_per_second=tokens_per_second,
        error=error,
        passive=True,
    )
    _followup_in_thread(
        listing_id=listing_id,
        outcome=outcome,
        ok=ok,
        status_code=status_code,
        ttft_ms=ttft_ms,
        tps=tokens_per_second,
        error=error,
    )


async def successes_report_async(
    *, listing_id: int, count: int, ttfts: list[float], tpss: list[float]
) -> None:
    """`count` passive successes at once (the gateway batches them per listing): the same writes
    as `count` single reports, in one round trip; samples oldest first."""
    outcome = await _report_async(
        listing_id=listing_id,
        ok=True,
        status_code=200,
        ttfts=ttfts,
        tpss=tpss,
        error="",
        passive=True,
        successes=count,
    )
    _followup_in_thread(
        listing_id=listing_id,
        outcome=outcome,
        ok=True,
        status_code=200,
        ttft_ms=ttfts[-1] if ttfts else None,
        tps=tpss[-1] if tpss else None,
        error="",
    )


def _followup_in_thread(*, outcome: Outcome, **kwargs: Any) -> None:
    if not (outcome.write_sample or outcome.key_rejected):
        return
    future = asyncio.get_running_loop().run_in_executor(
        None, lambda: _in_thread(outcome=outcome, **kwargs)
    )
    _background.add(future)
    future.add_done_callback(_background.discard)


async def background_drain() -> None:
    """Wait for pending database follow-ups (tests and graceful shutdown)."""
    while _background:
        await asyncio.gather(*list(_background), return_exceptions=True)
