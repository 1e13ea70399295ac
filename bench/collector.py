"""The gateway's garbage collector over a phase: its pauses (observability/gc_pauses.py) between two
scrapes of each gateway process's /metrics, the same scrapes as the stage timings (bench/stages.py).
"""

from __future__ import annotations

import math

from prometheus_client.parser import text_string_to_metric_families

from observability.gc_pauses import GENERATIONS, NAME


def _totals(text: str) -> tuple[float, list[int], dict[float, int]]:
    """(seconds, collections by generation, collections at or under each bound) from one scrape."""
    seconds, collections, under = 0.0, [0] * GENERATIONS, {}
    for family in text_string_to_metric_families(text):
        if family.name != NAME:
            continue
        for sample in family.samples:
            if sample.name.endswith("_sum"):
                seconds += sample.value
            elif sample.name.endswith("_count"):
                collections[int(sample.labels["generation"])] += int(sample.value)
            elif sample.name.endswith("_bucket"):
                bound = float(sample.labels["le"])
                under[bound] = under.get(bound, 0) + int(sample.value)
    return seconds, collections, under


def between(before: list[str], after: list[str], served: int) -> dict | None:
    """The collector over a phase, summed over the gateway processes (one scrape text each, in
    the same order both times): milliseconds in all and per request, collections by generation,
    and the bound the longest one stayed under. None when a process did not report pauses."""
    seconds, collections, under = 0.0, [0] * GENERATIONS, {}
    for old_text, new_text in zip(before, after, strict=True):
        old, new = _totals(old_text), _totals(new_text)
        if not new[2]:
            return None
        seconds += new[0] - old[0]
        collections = [
            total + n - o for total, n, o in zip(collections, new[1], old[1], strict=True)
        ]
        for bound, count in new[2].items():
            under[bound] = under.get(bound, 0) + count - old[2].get(bound, 0)
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
