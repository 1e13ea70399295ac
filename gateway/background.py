"""Fire-and-forget work off the response path (health reports, key touches): the runtime's registry."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine

from gateway import runtime


def spawn(coro: Coroutine) -> asyncio.Task:
    """Run `coro` in the loop's task registry (runtime.py): referenced, logged, drained on close."""
    return runtime.current().spawn(coro)


async def drain() -> None:
    """Wait (up to 5 s) for outstanding background work (shutdown and tests)."""
    await runtime.current().drain()
