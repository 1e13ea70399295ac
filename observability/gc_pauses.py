"""How long the cyclic garbage collector stops a process: `dragonfly_gc_pause_seconds{generation}`,
a histogram of every collection, read at scrape time.

A collection runs on whichever thread allocated past the collector's threshold, holding the GIL,
so every request of the process waits for it. Daphne's process raises the youngest generation's
threshold (dragonfly/daphne.py): young collections are then rare, but each walks about 50,000
objects (10-15 ms under load). This is where an operator sees what that costs, and the benchmark
per phase (bench/collector.py).

The collector calls back inside a collection, and a collection can start at any allocation, even
one made while a metric's lock is held; so the callback only adds to plain numbers, and the
histogram is built from them when /metrics is read.
"""

from __future__ import annotations

import bisect
import gc
import itertools
import time
from collections.abc import Iterable

from prometheus_client import REGISTRY
from prometheus_client.core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

NAME = "dragonfly_gc_pause_seconds"
BUCKETS = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5)
GENERATIONS = 3


class GcPauses(Collector):
    def __init__(self) -> None:
        self._started = 0.0
        # Per generation: collections per bucket (the last one past every bound), seconds in all.
        self._counts = [[0] * (len(BUCKETS) + 1) for _ in range(GENERATIONS)]
        self._seconds = [0.0] * GENERATIONS

    def timed(self, phase: str, info: dict) -> None:
        """A `gc.callbacks` entry: called at the start and the stop of each collection."""
        if phase == "start":
            self._started = time.perf_counter()
            return
        seconds = time.perf_counter() - self._started
        generation = info["generation"]
        self._seconds[generation] += seconds
        self._counts[generation][bisect.bisect_left(BUCKETS, seconds)] += 1

    def describe(self) -> Iterable[Metric]:
        return [self._family()]

    def collect(self) -> Iterable[Metric]:
        family = self._family()
        for generation in range(GENERATIONS):
            cumulative = list(itertools.accumulate(self._counts[generation]))
            buckets = [
                (repr(bound), count) for bound, count in zip(BUCKETS, cumulative[:-1], strict=True)
            ]
            buckets.append(("+Inf", cumulative[-1]))
            family.add_metric([str(generation)], buckets, self._seconds[generation])
        return [family]

    def _family(self) -> HistogramMetricFamily:
        return HistogramMetricFamily(
            NAME,
            "How long each cyclic garbage collection stopped the process, by generation",
            labels=["generation"],
        )


_installed: GcPauses | None = None


def install() -> GcPauses:
    """Time every collection of this process from now on (once per process)."""
    global _installed
    if _installed is None:
        _installed = GcPauses()
        gc.callbacks.append(_installed.timed)
        REGISTRY.register(_installed)
    return _installed
