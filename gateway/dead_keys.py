"""Listings whose seller key an upstream just rejected: this process stops routing to them at once.

The upstream's 401/402/403 (`upstream/statuses.py` key_rejected) is reported to market health at
once (`proxy.report` -> `health_reports.failure`): the Redis flag and the listing's suspension
reach every other process at its next routing-table refresh. Until then this process's table
still shows the listing live, so `proxy.report` marks it here and ranking counts it `suspended`
(routing.rank's `dead`), and failover skips it even for a request ranked before the mark.

A mark ends when a table loaded after the suspension had time to land
(`SETTLED_SECONDS` after the mark) shows the listing routable again (its seller re-keyed it and a
probe verified it, or an operator cleared it), and in any case after `LIFETIME_SECONDS`: if the
suspension was never written, the next rejection marks it again.
"""

from __future__ import annotations

import time

from gateway.runtime import caches

LIFETIME_SECONDS = 300.0
SETTLED_SECONDS = 2.0  # the passive report's Redis write and suspension take milliseconds


def mark(listing_id: int) -> None:
    caches.dead_keys.setdefault(listing_id, time.monotonic())


def marked(listing_id: int) -> bool:
    at = caches.dead_keys.get(listing_id)
    return at is not None and time.monotonic() - at < LIFETIME_SECONDS


def excluded(table) -> frozenset[int]:
    """The listings to leave out under `table` (a routing.Table); forgets the marks it shows are
    over. Empty, and free, in the usual case of no rejected key."""
    if not caches.dead_keys:
        return frozenset()
    now = time.monotonic()
    routable = None
    for listing_id, at in list(caches.dead_keys.items()):
        if now - at >= LIFETIME_SECONDS:
            caches.dead_keys.pop(listing_id, None)
        elif table.loaded_at - at >= SETTLED_SECONDS:
            if routable is None:
                routable = {
                    c.listing_id
                    for rows in table.candidates.values()
                    for c in rows
                    if c.health != "suspended"
                }
            if listing_id in routable:
                caches.dead_keys.pop(listing_id, None)
    return frozenset(caches.dead_keys)
