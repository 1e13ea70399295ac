"""Natural batching on the event loop: one call in flight; the calls that arrive meanwhile go out
together as the next one.

A lone caller is sent at once (no timer, no added latency); under load, whatever queued while the
previous batch ran is sent as one batch. For the money fast path that turns N transactions, each
waiting for the WAL flush while it holds the wallet's row lock, into one (docs/money.md, "Batches").

Callers await their own item's result. The batch runs in a task of its own, so a caller that is
cancelled (the buyer hung up) never cancels the batch: its item is applied all the same, and
`orphaned(item, result)` is told of it, to undo what no one will use (a capacity slot).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

# Runs a batch; returns, per item and in order, its result or the exception to raise for it.
RunBatch = Callable[[list[Any]], Awaitable[list[Any]]]
Orphaned = Callable[[Any, Any], None]


class Batcher:
    """Used by one event loop at a time (like the pools it feeds): a new loop starts it afresh.
    The gateway keeps one per loop, in that loop's runtime (gateway/runtime.py)."""

    def __init__(self, run: RunBatch, *, max_items: int, orphaned: Orphaned | None = None) -> None:
        self._run = run
        self._max_items = max_items
        self._orphaned = orphaned
        self._queue: list[tuple[Any, asyncio.Future]] = []
        self._worker: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def submit(self, item: Any) -> Any:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # first use, or a new loop (tests): nothing carries over
            self._loop, self._queue, self._worker = loop, [], None
        future = loop.create_future()
        self._queue.append((item, future))
        if self._worker is None or self._worker.done():
            self._worker = loop.create_task(self._drain())
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            if self._orphaned is not None:
                future.add_done_callback(lambda done: self._orphan(item, done))
            raise

    def _orphan(self, item: Any, done: asyncio.Future) -> None:
        if not done.cancelled() and done.exception() is None and self._orphaned is not None:
            self._orphaned(item, done.result())

    async def _drain(self) -> None:
        while self._queue:
            batch = self._queue[: self._max_items]
            del self._queue[: self._max_items]
            try:
                results = await self._run([item for item, _ in batch])
            except Exception as exc:  # the whole batch failed: every caller gets the error
                results = [exc] * len(batch)
            for (_, future), result in zip(batch, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, BaseException):
                    future.set_exception(result)
                    future.exception()  # retrieved: a caller that left must not log it
                else:
                    future.set_result(result)

    async def idle(self) -> None:
        """Wait until every submitted item has been applied (shutdown, tests)."""
        if self._loop is not asyncio.get_running_loop():
            return
        while self._worker is not None and not self._worker.done():
            await asyncio.shield(self._worker)
