"""Fire-and-forget work off the response path (health reports, key touches): referenced and logged."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine

logger = logging.getLogger("gateway")
_tasks: set[asyncio.Task] = set()


def spawn(coro: Coroutine) -> asyncio.Task:
    task = asyncio.get_running_loop().create_task(coro)
    _tasks.add(task)
    task.add_done_callback(_done)
    return task


def _done(task: asyncio.Task) -> None:
    _tasks.discard(task)
    if not task.cancelled() and task.exception() is not None:
        logger.warning("background task failed: %r", task.exception())


async def drain() -> None:
    """Wait (up to 5 s) for outstanding background work (shutdown and tests)."""
    pending = [task for task in _tasks if not task.done()]
    if pending:
        await asyncio.wait(pending, timeout=5.0)
