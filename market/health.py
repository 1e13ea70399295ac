"""Per-listing health in Redis, fed by active probes and the gateway's passive reports.

State machine (docs/health.md):
- unknown: nothing recorded yet.
- healthy: successes recorded, no failure in the last DEGRADED_WINDOW_S, p50 TTFT not slow.
- degraded: a failure in the last DEGRADED_WINDOW_S, or p50 TTFT above SLOW_TTFT_MS. Still routed.
- cooling_down: FAIL_THRESHOLD failures within FAIL_WINDOW_S. Not routed. Lasts COOLDOWN_S at
  least; after that the first success (a recovery probe) makes it healthy again, a failure re-arms it.
- suspended: the upstream rejected the key or reported no balance (key_rejected in
  gateway/upstream/statuses.py, which also says which failures count at all). The listing's
  status becomes suspended too (services.listing_suspend, the seller is emailed once); only a
  re-key or an operator clears it.
A seller's pause is a listing status, not a health state: nothing here changes a listing's status
except through services that only move active listings (conditional updates).

This module reads it (health_many, health_get); market.health_record writes reports into it and
market.health_passive adds the gateway's database side (history samples, suspension). Reads are on
the routing table's reload and on pages, so they have short timeouts and never fail: while Redis
fails they answer what this process last read (docs/gateway.md, "When Redis is down").

Every key starts with ``df:mh:<listing id>``. No value ever holds an upstream key: errors stored
here are our own short descriptions, or the gateway's passed through observability.logs.redact.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError

from gateway.runtime import caches
from observability.logs import redact
from redis_clients.clients import get_redis, get_redis_short

logger = logging.getLogger("market")

FAIL_THRESHOLD = 3
FAIL_WINDOW_S = 60
COOLDOWN_S = 30
DEGRADED_WINDOW_S = 120
SLOW_TTFT_MS = 10_000.0
SAMPLES = 50  # TTFT / throughput samples kept for percentiles
OUTCOMES = 100  # recent outcomes kept for uptime
PASSIVE_SAMPLE_EVERY_S = 60  # at most one passive-success HealthSample per listing per minute
KEY_TTL_S = 7 * 24 * 3600

HEALTHY = "healthy"
DEGRADED = "degraded"
COOLING_DOWN = "cooling_down"
SUSPENDED = "suspended"
UNKNOWN = "unknown"


def redis_key(listing_id: int, part: str = "") -> str:
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
    pipe.hgetall(redis_key(listing_id))
    pipe.lrange(redis_key(listing_id, "ttft"), 0, SAMPLES - 1)
    pipe.lrange(redis_key(listing_id, "tps"), 0, SAMPLES - 1)
    pipe.lrange(redis_key(listing_id, "out"), 0, OUTCOMES - 1)


_UNKNOWN_VIEW = HealthView(UNKNOWN, None, None, None, None, None, "", None, None, None, None)
_BACKOFF_S = 1.0
# Process state (gateway.runtime.caches): health_last, each listing's last view read, answered
# while Redis fails; health_skip_until, after a failure reads answer it without trying Redis.


def health_many(listing_ids: Iterable[int]) -> dict[int, HealthView]:
    """The health of many listings in one Redis round trip.

    While Redis fails (and for a second after each failure), each listing's last view read by this
    process, or unknown if it was never read: the routing table keeps routing as it last knew
    (the gateway's reports cannot change the health meanwhile anyway) and still picks up listings
    added or paused in the database."""
    ids = list(listing_ids)
    if not ids:
        return {}
    if time.monotonic() < caches.health_skip_until:
        return _last_views(ids)
    try:
        pipe = get_redis_short().pipeline(transaction=False)
        for listing_id in ids:
            _queue_reads(pipe, listing_id)
        raw = pipe.execute()
    except (RedisError, OSError) as exc:
        logger.warning("redis unavailable for health reads: %s", type(exc).__name__)
        caches.health_skip_until = time.monotonic() + _BACKOFF_S
        return _last_views(ids)
    now = time.time()
    views = {}
    for i, listing_id in enumerate(ids):
        h, ttft, tps, out = raw[4 * i : 4 * i + 4]
        views[listing_id] = _view(h or {}, _floats(ttft), _floats(tps), list(out or []), now)
    caches.health_last.update(views)
    return views


def _last_views(ids: list[int]) -> dict[int, HealthView]:
    last = caches.health_last
    return {listing_id: last.get(listing_id, _UNKNOWN_VIEW) for listing_id in ids}


def health_get(listing_id: int) -> HealthView:
    return health_many([listing_id])[listing_id]


def health_reset(listing_id: int) -> None:
    """Forget everything about a listing (a new key is a new channel)."""
    get_redis().delete(
        *(redis_key(listing_id, part) for part in ("", "fails", "ttft", "tps", "out"))
    )


def clean_error(error: str) -> str:
    return redact(str(error or ""))[:200]
