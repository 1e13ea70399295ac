"""Where a request's wall time goes: one request in DRAGONFLY_GATEWAY_STAGE_SAMPLE is timed at each
step of trade.run and observed into dragonfly_gateway_stage_seconds{stage} once it has settled.

Sampling keeps the cost off the hot path (a histogram observation per stage is about 1.5 us; at
one request in 16 that is 0.1 us per request). The stages are STAGES, below: `body` is reading
and parsing it, `turn` waiting for an admission turn, `route` resolving and sizing, `upstream`
until the answer's head or first token, `relay` the rest of the answer. The gateway's CPU by stage
is measured from outside (bench/stages.py); docs/performance.md has both.
"""

from __future__ import annotations

import itertools
import time

from django.conf import settings

from observability.metrics import GATEWAY_STAGE_SECONDS, labelled

# Every stage a request that settles is timed at, in the order trade.run takes them.
STAGES = (
    "auth",
    "body",
    "turn",
    "route",
    "rate_limit",
    "rank",
    "slot_and_hold",
    "upstream",
    "relay",
    "settle",
)
_requests = itertools.count()


class Stopwatch:
    """The laps of one sampled request, observed together at its end."""

    __slots__ = ("_laps", "_last")

    def __init__(self) -> None:
        self._last = time.monotonic()
        self._laps: list[tuple[str, float]] = []

    def lap(self, stage: str) -> None:
        now = time.monotonic()
        self._laps.append((stage, now - self._last))
        self._last = now

    def served(self, first_content_at: float | None) -> None:
        """The serve step as two laps: until the first content (or the end), then the relay."""
        if first_content_at is not None and first_content_at >= self._last:
            self._laps.append(("upstream", first_content_at - self._last))
            self._last = first_content_at
            self.lap("relay")
        else:
            self.lap("upstream")

    def observe(self) -> None:
        for stage, seconds in self._laps:
            labelled(GATEWAY_STAGE_SECONDS, stage).observe(seconds)


class _Unsampled:
    __slots__ = ()

    def lap(self, stage: str) -> None:
        pass

    def served(self, first_content_at: float | None) -> None:
        pass

    def observe(self) -> None:
        pass


UNSAMPLED = _Unsampled()
Watch = Stopwatch | _Unsampled


def stopwatch() -> Watch:
    """A Stopwatch for one request in DRAGONFLY_GATEWAY_STAGE_SAMPLE (0: none), else a no-op."""
    every = settings.DRAGONFLY_GATEWAY_STAGE_SAMPLE
    if every and next(_requests) % every == 0:
        return Stopwatch()
    return UNSAMPLED
