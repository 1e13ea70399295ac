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

A turn is also where a process waits for its database: each request's settlement lands after its
answer, in a task of its own (trade.settle), and when requests come faster than PostgreSQL books
them those tasks pile up, a few KB each (docs/performance.md: 3,500 waiting, 1.4 s each, at zero
delay c = 64). Past DRAGONFLY_GATEWAY_SETTLEMENT_BACKLOG settlements waiting, a request waits for
its turn until one lands, so the process serves what its database settles.
"""

from __future__ import annotations

import asyncio

from django.conf import settings

from gateway import runtime


def settling() -> None:
    """A request's settlement is on its way (trade.settle): it counts until `landed()`."""
    runtime.current().settlements_waiting += 1


def landed() -> None:
    """A settlement landed (or was left to the reaper): requests waiting for room may go."""
    state = runtime.current()
    state.settlements_waiting -= 1
    _wake(state)


def _wake(state: runtime.Runtime) -> None:
    """As many of the requests waiting for room go, first come first, as there is room."""
    room = settings.DRAGONFLY_GATEWAY_SETTLEMENT_BACKLOG - state.settlements_waiting
    waiting = state.settlement_room
    while room > 0 and waiting:
        waiter = waiting.popleft()
        if not waiter.done():  # else it left while it waited
            waiter.set_result(None)
            room -= 1


async def _room(state: runtime.Runtime) -> None:
    """Wait, in arrival order, while the settlements waiting are at the backlog's bound."""
    while state.settlements_waiting >= settings.DRAGONFLY_GATEWAY_SETTLEMENT_BACKLOG:
        waiter = state.loop.create_future()
        state.settlement_room.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # woken, then cancelled: pass it on
                _wake(state)
            raise


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
        state = runtime.current()
        if state.settlements_waiting >= settings.DRAGONFLY_GATEWAY_SETTLEMENT_BACKLOG:
            await _room(state)
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
