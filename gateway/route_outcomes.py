"""Why traffic moved: for every listing offering a requested model, whether it won the request or
why not, counted in this process and added to market.RouteOutcome in the background.

Counted once per request, when its routing is over (trade.run), from what each step recorded as
it decided: ranking's filters (Call.removed, filled by routing.rank), the listings set aside after
ranking (Call.dropped: allow_fallbacks, max_cost, and the first capacity take's full listings,
"capacity" at the concurrency cap or "requests_per_minute"), failover's passes (the route trace)
and the listing that served. A listing that stayed eligible but was not tried lost on ranking's
own key (Call.keys, the routing.rank_key each had when it was sorted): the first part in which its
key is greater than the winner's is the reason; a key smaller than the winner's means the
session's pin put the winner first ("sticky"). Nothing is computed or looked up again: no Redis,
no database, per request.

A request refused for the buyer's own reasons after ranking (funds, spend limit, X-Max-Cost that
nothing fits) is not counted: no listing lost it. A 503 with nothing eligible is: every listing
under the reason that removed it. Listings out of the table (paused, suspended by status) are not
counted; their sellers know why.

Cost per request: one pass over the model's candidates with a dict increment each, one time()
call; ranking stores each eligible listing's sort key and each removed one's reason (a dict store
each). Each event loop keeps its own counts (Runtime.outcomes_pending) and writes them every
FLUSH_SECONDS in one statement that adds to the rows (market.route_outcomes.route_outcomes_add),
so processes and loops sum exactly. A write that fails keeps the counts for the next; shutdown
writes what is left (Runtime.close).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from gateway import route_trace, routing, runtime
from gateway.db import db_call

if TYPE_CHECKING:
    from gateway.call import Call

logger = logging.getLogger("gateway")

FLUSH_SECONDS = 10.0

WON = "won"
FAILED = "failed"  # tried on this request, and the upstream failed
NOT_REACHED = "not_reached"  # eligible, but the request ended before its turn
STICKY = "sticky"
DEGRADED = "degraded"

# Failover's reasons (route_trace.py) as the seller's: any other pass is an upstream failure. A
# listing failover found full (capacity.take) is at one cap or the other: "at_a_cap".
_PASSED = {route_trace.AT_CAPACITY: "at_a_cap", route_trace.KEY_SUSPENDED: "suspended"}


def count(call: Call) -> None:
    """Count the request's outcome for every listing in its model's routing table (trade.run,
    in a `finally`: it never raises, so it cannot replace the request's own error)."""
    try:
        _count(call)
    except Exception:
        logger.exception("route outcomes of %s not counted", call.out.request_id)


def _count(call: Call) -> None:
    route = call.route
    model_id = route.model["model_id"]
    candidates = route.table.candidates.get(model_id)
    if not candidates:
        return
    winner = call.meter.candidate
    removed, dropped = call.removed, call.dropped
    if winner is None and call.attempts is None and len(removed) < len(candidates):
        return  # refused after ranking for the buyer's own reasons, or never ranked
    passed = {listing_id: why for listing_id, _, why in call.meter.trace.passed}
    keys = call.keys
    minute = int(time.time() // 60)
    state = runtime.current()
    pending = state.outcomes_pending
    for c in candidates:
        listing_id = c.listing_id
        reason = dropped.get(listing_id) or removed.get(listing_id)  # a 503's re-rank: dropped's
        if reason is None:
            if winner is not None and listing_id == winner.listing_id:
                reason = WON
            elif listing_id in passed:
                reason = _PASSED.get(passed[listing_id], FAILED)
            elif winner is None:
                reason = NOT_REACHED
            else:
                reason = _outranked(c, keys[listing_id], winner, keys[winner.listing_id])
        key = (listing_id, model_id, reason, minute)
        pending[key] = pending.get(key, 0) + 1
    state.service("outcomes", _flush_forever)


def _outranked(loser, loser_key: tuple, winner, winner_key: tuple) -> str:
    """Why an eligible listing that was not tried ranked after the one that served."""
    if loser_key < winner_key:
        return STICKY  # it ranked first: only the session's pin puts another ahead
    part = 0
    while loser_key[part] == winner_key[part]:  # they differ: a key ends with the listing id
        part += 1
    if part == 1 and loser.health == DEGRADED and winner.health != DEGRADED:
        return DEGRADED
    return routing.RANK_KEY_PARTS[part]


async def flush() -> None:
    """Add this loop's counts to the rows now (the flusher, shutdown and tests). A failed write
    puts them back, to be added to the next."""
    from market.route_outcomes import route_outcomes_add

    state = runtime.current()
    counts, state.outcomes_pending = state.outcomes_pending, {}
    if not counts:
        return
    try:
        await db_call(route_outcomes_add, counts=counts, idempotent=False)
    except Exception as exc:  # the database is down: keep them (a minute key stays its minute)
        logger.warning("route outcomes not written (%d rows kept): %r", len(counts), exc)
        pending = state.outcomes_pending
        for key, n in counts.items():
            pending[key] = pending.get(key, 0) + n


async def _flush_forever() -> None:
    while True:
        await asyncio.sleep(FLUSH_SECONDS)
        await flush()


async def stop() -> None:
    """Stop this loop's flusher and write what it holds."""
    runtime.current().stop_service("outcomes")
    await flush()
