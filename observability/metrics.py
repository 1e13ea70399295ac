"""Prometheus metrics shared by the control plane and the gateway (one registry per process)."""

from collections.abc import Iterable
from typing import Any

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

GATEWAY_REQUESTS = Counter(
    "dragonfly_gateway_requests_total", "Requests served on /v1", ["endpoint", "status"]
)
GATEWAY_LATENCY = Histogram(
    "dragonfly_gateway_request_seconds",
    "Time from request to the last byte on /v1",
    ["endpoint"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
GATEWAY_STAGE_SECONDS = Histogram(
    "dragonfly_gateway_stage_seconds",
    "Wall time of each step of a billed /v1 request, for a sample of requests (gateway/stages.py)",
    ["stage"],
    buckets=(1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 10, 60),
)
UPSTREAM_ATTEMPTS = Counter(
    "dragonfly_upstream_attempts_total",
    "Upstream calls by provider and outcome",
    ["provider", "outcome"],
)
GATEWAY_REDIS_ERRORS = Counter(
    "dragonfly_gateway_redis_errors_total",
    "Redis calls the gateway skipped or lost (it fails open: rate limits and stickiness only)",
    ["purpose"],
)
GATEWAY_SETTLEMENTS = Counter(
    "dragonfly_gateway_settlements_total", "Requests settled or voided by the gateway", ["outcome"]
)
GATEWAY_KEY_LOOKUPS = Counter(
    "dragonfly_gateway_key_lookups_total",
    "Access keys the gateway looked up in the database (its caches missed), by whether one existed",
    ["result"],
)
GATEWAY_ADDRESS_LIMITED = Counter(
    "dragonfly_gateway_address_limited_total",
    "Requests refused 429 because their address sent too many without a valid key this minute",
)
SETTLEMENT_OVERRUNS = Counter(
    "dragonfly_settlement_overruns_total",
    "Settled requests that cost more than their hold (the excess went to the overrun account)",
)
SETTLEMENT_OVERRUN_NUSD = Counter(
    "dragonfly_settlement_overrun_nusd_total",
    "Nano-dollars charged to the platform's overrun account by settlements",
)

# The children labelled() has made: (metric, label values) -> child.
_children: dict[tuple[Any, tuple[str, ...]], Any] = {}


def labelled(metric: Any, *values: str) -> Any:
    """`metric.labels(*values)`, kept once made. labels() checks its arguments and takes the
    metric's lock on every call (1.6 us), and the /v1 path asks for the same few children on each
    request (the label values are endpoint names, statuses, providers and outcomes)."""
    key = (metric, values)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*values)
    return child


# The ledger check's last result. `manage.py ledger_check` runs in a process of its own and the beat
# task in a worker, neither of which is scraped, so the result is kept in Redis (one hash) and read
# back by a collector when any process's /metrics is scraped: every web process reports the same
# last run (use max(), not sum(), across instances). Nothing is exposed before the first run, or
# while Redis does not answer; docs/money.md has the alert rules.
LEDGER_CHECK_KEY = "dragonfly:ledger_check:last"


def ledger_check_record(*, violations: int, finished_at: float, duration_seconds: float) -> None:
    """Store one ledger check's outcome for the collector below (billing.checks calls this)."""
    from redis_clients.clients import get_redis

    get_redis().hset(
        LEDGER_CHECK_KEY,
        mapping={
            "violations": violations,
            "finished_at": repr(finished_at),
            "duration_seconds": repr(duration_seconds),
        },
    )


class LedgerCheckCollector(Collector):
    """dragonfly_ledger_check_* gauges, read from Redis at scrape time."""

    def _families(self) -> list[GaugeMetricFamily]:
        return [
            GaugeMetricFamily(
                "dragonfly_ledger_check_violations",
                "Ledger invariants broken at the last ledger_check (0 when the ledger is sound)",
            ),
            GaugeMetricFamily(
                "dragonfly_ledger_check_last_run_timestamp_seconds",
                "Unix time at which the last ledger_check finished",
            ),
            GaugeMetricFamily(
                "dragonfly_ledger_check_duration_seconds",
                "How long the last ledger_check took",
            ),
        ]

    def describe(self) -> Iterable[Metric]:
        return self._families()  # names only: registering must not call Redis

    def collect(self) -> Iterable[Metric]:
        from redis_clients.clients import get_redis

        try:
            last = get_redis().hgetall(LEDGER_CHECK_KEY)
            values = [
                float(last["violations"]),
                float(last["finished_at"]),
                float(last["duration_seconds"]),
            ]
        except Exception:  # no run recorded yet, or Redis down: the gauges are absent
            return []
        families = self._families()
        for family, value in zip(families, values, strict=True):
            family.add_metric([], value)
        return families


REGISTRY.register(LedgerCheckCollector())
