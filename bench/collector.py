"""The gateway's garbage collector over a phase: its pauses (observability/gc_pauses.py) between two
scrapes of each gateway process's /metrics, the same scrapes as the stage timings (bench/stages.py).
"""

from __future__ import annotations

import math

from bench import scrapes
from observability.gc_pauses import GENERATIONS, NAME


def between(before: list[str], after: list[str], served: int) -> dict | None:
    """The collector over a phase, summed over the gateway processes (one scrape text each, in
    the same order both times): milliseconds in all and per request, collections by generation,
    and the bound the longest one stayed under. None when a process did not report pauses."""
    if not all(scrapes.totals(text, NAME, "generation") for text in after):
        return None
    changed = scrapes.change(before, after, NAME, "generation")
    seconds = sum(t.seconds for t in changed.values())
    collections = [
        int(changed[str(g)].count) if str(g) in changed else 0 for g in range(GENERATIONS)
    ]
    under: dict[float, float] = {}
    for t in changed.values():
        for bound, count in t.under.items():
            under[bound] = under.get(bound, 0) + count
    everyone = sum(collections)
    longest = min((bound for bound, count in under.items() if count == everyone), default=None)
    return {
        "ms": round(1000 * seconds, 2),
        "us_per_request": round(1e6 * seconds / served, 2) if served else None,
        "collections": collections,
        "longest_under_ms": (
            1000 * longest if everyone and longest is not None and not math.isinf(longest) else None
        ),
    }
