"""bench/collector.py: the garbage collector's pauses over a phase, from two scrapes of each gateway
process's /metrics, as observability/gc_pauses.py exposes them after real collections."""

import gc

from prometheus_client import CollectorRegistry, generate_latest

from bench.collector import between
from observability.gc_pauses import GcPauses


class Process:
    """One gateway process's pauses: a GcPauses of its own, timing only what `collect` runs."""

    def __init__(self) -> None:
        self.pauses = GcPauses()
        self.registry = CollectorRegistry()
        self.registry.register(self.pauses)

    def collect(self, *generations: int) -> None:
        gc.callbacks.append(self.pauses.timed)
        try:
            for generation in generations:
                gc.collect(generation)
        finally:
            gc.callbacks.remove(self.pauses.timed)

    def scrape(self) -> str:
        return generate_latest(self.registry).decode()


def test_a_phase_counts_the_collections_between_its_two_scrapes():
    process = Process()
    process.collect(0)  # before the phase: not counted
    before = process.scrape()
    process.collect(0, 0, 0, 1)
    seen = between([before], [process.scrape()], served=4)
    assert seen["collections"] == [3, 1, 0]
    assert seen["ms"] > 0
    assert abs(seen["us_per_request"] - 1000 * seen["ms"] / 4) <= 1.25  # ms (to 0.01) over 4
    assert seen["longest_under_ms"] in (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 500.0)


def test_two_processes_are_summed_and_a_process_without_pauses_reports_nothing():
    first, second = Process(), Process()
    before = [first.scrape(), second.scrape()]
    first.collect(0)
    second.collect(2)
    seen = between(before, [first.scrape(), second.scrape()], served=0)
    assert seen["collections"] == [1, 0, 1]
    assert seen["us_per_request"] is None  # nothing served: no per-request figure
    assert between([""], [""], served=10) is None  # a gateway that does not expose them
    quiet = between([first.scrape()], [first.scrape()], served=10)
    assert quiet == {
        "ms": 0.0,
        "us_per_request": 0.0,
        "collections": [0, 0, 0],
        "longest_under_ms": None,
    }
