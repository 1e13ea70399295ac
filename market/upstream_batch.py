"""A batch of upstream calls made from synchronous code (a Celery task, a command): the health
probes' and the authenticity probes'. Each target goes through `one(session, target)`, at most
`concurrency` at a time, in an upstream client of the batch's own (with its own timeouts, never
the gateway's pooled one), on an event loop of its own: in a worker thread when the caller is
already running a loop (an eager task called from async code)."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from gateway.upstream.client import Client

T = TypeVar("T")
R = TypeVar("R")


async def gather_bounded(
    one: Callable[[Client, T], Awaitable[R]],
    targets: Sequence[T],
    *,
    concurrency: int,
    timeout_s: float,
) -> list[R]:
    semaphore = asyncio.Semaphore(concurrency)
    async with Client(connect_timeout=5, total_timeout=timeout_s) as session:

        async def bounded(target: T) -> R:
            async with semaphore:
                return await one(session, target)

        return list(await asyncio.gather(*(bounded(t) for t in targets)))


def run_batch(
    one: Callable[[Client, T], Awaitable[R]],
    targets: Sequence[T],
    *,
    concurrency: int,
    timeout_s: float,
) -> list[R]:
    batch = gather_bounded(one, targets, concurrency=concurrency, timeout_s=timeout_s)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(batch)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, batch).result()
