"""Streaming load with an asyncio + aiohttp client: time to first token and total time per stream.

Workers stop starting streams at the end of the window (or the request budget) and finish the ones
in flight, so every stream the gateway serves is also counted here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of an unsorted list; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, round(q / 100 * len(ordered) + 0.5 - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass
class StreamStats:
    served: int = 0  # 2xx responses
    complete: int = 0  # 2xx streams that ended with data: [DONE]
    non_2xx: int = 0
    errors: int = 0  # exceptions (connection reset, timeout)
    chunks: int = 0
    ttft_ms: list[float] = field(default_factory=list)
    total_ms: list[float] = field(default_factory=list)
    elapsed_s: float = 0.0
    statuses: dict[int, int] = field(default_factory=dict)
    first_error: str = ""

    def summary(self) -> dict:
        def r(x: float | None) -> float | None:
            return None if x is None else round(x, 3)

        return {
            "served": self.served,
            "complete": self.complete,
            "non_2xx": self.non_2xx,
            "errors": self.errors,
            "first_error": self.first_error,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "chunks_per_stream": r(self.chunks / self.served) if self.served else None,
            "rps": r(self.served / self.elapsed_s) if self.elapsed_s else 0.0,
            "elapsed_s": r(self.elapsed_s),
            "ttft_p50_ms": r(percentile(self.ttft_ms, 50)),
            "ttft_p99_ms": r(percentile(self.ttft_ms, 99)),
            "total_p50_ms": r(percentile(self.total_ms, 50)),
            "total_p99_ms": r(percentile(self.total_ms, 99)),
        }


async def _one(
    session: aiohttp.ClientSession, url: str, headers: dict, body: bytes, st: StreamStats
):
    t0 = time.perf_counter()
    first = None
    chunks = 0
    done = False
    try:
        async with session.post(url, data=body, headers=headers) as resp:
            status = resp.status
            st.statuses[status] = st.statuses.get(status, 0) + 1
            buf = b""
            async for data in resp.content.iter_any():
                if first is None and b"data:" in data:
                    first = time.perf_counter()
                chunks += data.count(b"data:")
                buf = (buf + data)[-64:]
            done = b"data: [DONE]" in buf
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        st.errors += 1
        st.first_error = st.first_error or repr(exc)
        return
    end = time.perf_counter()
    if 200 <= status < 300:
        st.served += 1
        st.chunks += chunks
        if done:
            st.complete += 1
        if first is not None:
            st.ttft_ms.append((first - t0) * 1000)
        st.total_ms.append((end - t0) * 1000)
    else:
        st.non_2xx += 1


async def stream_load(
    *,
    url: str,
    auth: str,
    body: bytes,
    concurrency: int,
    window_s: float,
    max_requests: int = 0,
    on_tick: Callable[[float], None] | None = None,
    tick_s: float = 5.0,
) -> StreamStats:
    st = StreamStats()
    headers = {"Authorization": f"Bearer {auth}", "Content-Type": "application/json"}
    # ssl=False: https only reaches the bench's own nginx, whose certificate is made per run
    connector = aiohttp.TCPConnector(limit=0, force_close=False, ssl=False)
    timeout = aiohttp.ClientTimeout(total=120)
    loop = asyncio.get_running_loop()
    started = 0
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        t0 = loop.time()
        stop_at = t0 + window_s

        async def worker() -> None:
            nonlocal started
            while loop.time() < stop_at and (max_requests <= 0 or started < max_requests):
                started += 1
                await _one(session, url, headers, body, st)

        async def ticker() -> None:
            while True:
                await asyncio.sleep(tick_s)
                if on_tick is not None:
                    on_tick(loop.time() - t0)

        tick_task = asyncio.create_task(ticker()) if on_tick is not None else None
        try:
            await asyncio.gather(*(worker() for _ in range(concurrency)))
        finally:
            if tick_task is not None:
                tick_task.cancel()
        st.elapsed_s = loop.time() - t0
    return st
