"""Passive health signals from served requests to market health, off the response path.

A failure is reported at once (it may cool a listing down, and failover depends on that). Successes
are counted in this process and written once a second per listing, all of them in one round trip
(market.health_passive.successes_report_async): under load a listing costs one Redis write a second, not
one per request. A success can therefore reach market health up to a second late; health states
are minutes-scale (docs/health.md), and a success never blocks routing.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from gateway import background, runtime

logger = logging.getLogger("gateway")

FLUSH_SECONDS = 1.0
_SAMPLES = 50  # market.health.SAMPLES: more than this per second is never read


@dataclass(slots=True)
class _Successes:
    count: int = 0
    ttfts: list[float] = field(default_factory=list)
    tpss: list[float] = field(default_factory=list)


def success(listing_id: int, *, ttft_ms: float | None, tps: float | None) -> None:
    state = runtime.current()  # its health_pending (listing -> successes) and "health" service
    batch = state.health_pending.get(listing_id)
    if batch is None:
        batch = state.health_pending[listing_id] = _Successes()
    batch.count += 1
    if ttft_ms is not None:
        batch.ttfts.append(ttft_ms)
        del batch.ttfts[:-_SAMPLES]
    if tps is not None:
        batch.tpss.append(tps)
        del batch.tpss[:-_SAMPLES]
    state.service("health", _flush_forever)


def failure(listing_id: int, *, status: int | None, error: str) -> None:
    from market.health_passive import attempt_report_async

    background.spawn(
        attempt_report_async(
            listing_id=listing_id,
            ok=False,
            status_code=status,
            ttft_ms=None,
            tokens_per_second=None,
            error=error,
        )
    )


async def flush() -> None:
    """Write every pending success now (the flusher, shutdown and tests)."""
    from market.health_passive import successes_report_async

    state = runtime.current()
    batches = list(state.health_pending.items())
    state.health_pending.clear()
    for listing_id, batch in batches:
        try:
            await successes_report_async(
                listing_id=listing_id, count=batch.count, ttfts=batch.ttfts, tpss=batch.tpss
            )
        except Exception as exc:  # Redis down: health is losable, the next second tries again
            logger.warning("passive health of listing #%s not written: %r", listing_id, exc)


async def _flush_forever() -> None:
    while True:
        await asyncio.sleep(FLUSH_SECONDS)
        await flush()


async def stop() -> None:
    """Stop this loop's flusher and write what it holds."""
    runtime.current().stop_service("health")
    await flush()
