"""The gateway's passive health signal: the Redis report (market.health_record), then its database
side in a worker thread: a history sample at most once a minute per listing, and suspension
when the upstream rejected the seller's key."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from gateway import runtime
from market.health import clean_error
from market.health_record import Outcome, report_batch_async

logger = logging.getLogger(__name__)


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


async def attempt_report_async(
    *,
    listing_id: int,
    ok: bool,
    status_code: int | None,
    ttft_ms: float | None,
    tokens_per_second: float | None,
    error: str = "",
) -> None:
    """The passive signal after one upstream attempt (the gateway reports failures so; successes
    in batches, below): Redis on the event loop; any database write goes to a worker thread."""
    outcome = await report_batch_async(
        listing_id=listing_id,
        ok=ok,
        status_code=status_code,
        ttfts=(ttft_ms,),
        tpss=(tokens_per_second,),
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
    outcome = await report_batch_async(
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
    runtime.current().track(future)  # the gateway's task registry: drained on close


async def background_drain() -> None:
    """Wait for pending background work, database follow-ups included (tests)."""
    await runtime.current().drain(within=None)
