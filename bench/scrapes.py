"""A histogram on the gateway processes' /metrics, as the benchmark reads it: one family's totals
by label in one scrape, and their change over a phase, summed over the processes. The stage
timings (bench/stages.py) and the collector's pauses (bench/collector.py) are both read this way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families


@dataclass(slots=True)
class Totals:
    """One labelled histogram: seconds observed, observations, and observations at or under each
    bucket's bound."""

    seconds: float = 0.0
    count: float = 0.0
    under: dict[float, float] = field(default_factory=dict)


def totals(text: str, name: str, label: str) -> dict[str, Totals]:
    """{value of `label`: its totals} of the histogram `name` in one scrape, in the scrape's order."""
    found: dict[str, Totals] = {}
    for family in text_string_to_metric_families(text):
        if family.name != name:
            continue
        for sample in family.samples:
            kind = sample.name.rpartition("_")[2]
            if kind not in ("sum", "count", "bucket"):
                continue
            one = found.setdefault(sample.labels[label], Totals())
            if kind == "sum":
                one.seconds = sample.value
            elif kind == "count":
                one.count = sample.value
            else:
                one.under[float(sample.labels["le"])] = sample.value
    return found


def change(before: list[str], after: list[str], name: str, label: str) -> dict[str, Totals]:
    """Each label's totals between two scrapes of each process (one text per process, in the same
    order both times), summed over the processes."""
    summed: dict[str, Totals] = {}
    for old_text, new_text in zip(before, after, strict=True):
        old = totals(old_text, name, label)
        for value, new in totals(new_text, name, label).items():
            was = old.get(value, Totals())
            into = summed.setdefault(value, Totals())
            into.seconds += new.seconds - was.seconds
            into.count += new.count - was.count
            for bound, count in new.under.items():
                into.under[bound] = into.under.get(bound, 0) + count - was.under.get(bound, 0)
    return summed
