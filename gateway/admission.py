"""First come, first served on the way to the upstream: at most DRAGONFLY_GATEWAY_ADMISSION
requests per event loop between their body and their upstream call.

Every step before the upstream call awaits (rate limits and capacity in Redis, the hold in
PostgreSQL), and asyncio resumes ready tasks in turn. When a burst of requests arrives at once,
each request moves one step per round, so all of them reach the upstream about when the last one
does: each waits for the whole burst's work. Their answers then come back together, their callers
send the next requests together, and the burst repeats (docs/performance.md, "Waves"). With a few
turns, a burst's first requests are through in a few steps, each later one starts as a turn frees,
and the requests reach the upstream in arrival order, spread out as their work is.

The body is read before a turn is taken, so a slow upload never holds one; what runs inside a turn
waits only on Dragonfly's own Redis and PostgreSQL.
"""

from __future__ import annotations

import asyncio

from django.conf import settings

from gateway import runtime


def _gate() -> asyncio.Semaphore:
    state = runtime.current()  # a semaphore is bound to the loop it first waits on
    gate = state.admission
    if gate is None:
        gate = state.admission = asyncio.Semaphore(settings.DRAGONFLY_GATEWAY_ADMISSION)
    return gate


class Turn:
    """`async with Turn() as turn:` waits for a turn (in arrival order); the turn is given back
    by `turn.end()`, once the request is ready for its upstream call, or when the block exits,
    whichever comes first."""

    __slots__ = ("_held",)

    def __init__(self) -> None:
        self._held: asyncio.Semaphore | None = None

    async def __aenter__(self) -> Turn:
        gate = _gate()
        await gate.acquire()
        self._held = gate
        return self

    def end(self) -> None:
        if self._held is not None:
            self._held.release()
            self._held = None

    async def __aexit__(self, *exc_info) -> None:
        self.end()
