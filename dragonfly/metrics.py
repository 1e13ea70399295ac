"""Prometheus metrics shared by the control plane and the gateway (one registry per process)."""

from prometheus_client import Counter, Histogram

GATEWAY_REQUESTS = Counter(
    "dragonfly_gateway_requests_total", "Requests served on /v1", ["endpoint", "status"]
)
GATEWAY_LATENCY = Histogram(
    "dragonfly_gateway_request_seconds",
    "Time from request to the last byte on /v1",
    ["endpoint"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
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
