"""What every upstream adapter shares: the pooled aiohttp session and the error that drives failover.

`UpstreamError.retryable` answers one question: may another listing succeed where this one failed?
Connect errors, timeouts, 429, 5xx, and a listing's rejected key (401/402/403) or missing model (404)
are retryable: the gateway reports them to market health and tries the next candidate. A request
the provider calls invalid (400, 413, 422) is permanent: every listing would refuse it.
"""

from __future__ import annotations

import asyncio

import aiohttp
from django.conf import settings

from gateway import runtime

PERMANENT_STATUSES = frozenset({400, 413, 422})


class UpstreamError(Exception):
    def __init__(self, reason: str, *, status: int | None = None, retryable: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason  # ours, never the upstream's body
        self.status = status
        self.retryable = retryable


def status_error(status: int, *, reason: str | None = None) -> UpstreamError:
    return UpstreamError(
        reason or f"HTTP {status}", status=status, retryable=status not in PERMANENT_STATUSES
    )


def session() -> aiohttp.ClientSession:
    """The process's pooled client for the running loop (created lazily: sessions are loop-bound)."""
    state = runtime.current()
    client = state.upstream
    if client is None or client.closed:
        client = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, limit_per_host=0, keepalive_timeout=60),
            timeout=aiohttp.ClientTimeout(
                total=settings.DRAGONFLY_UPSTREAM_TOTAL_TIMEOUT,
                sock_connect=settings.DRAGONFLY_UPSTREAM_CONNECT_TIMEOUT,
            ),
            auto_decompress=True,
            cookie_jar=aiohttp.DummyCookieJar(),  # one session serves every buyer: keep none
            skip_auto_headers=("User-Agent",),
        )
        state.upstream = client
    return client


async def post(url: str, *, key: str, body: bytes) -> aiohttp.ClientResponse:
    """POST and wait for the response head within the first-token timeout; errors as UpstreamError."""
    try:
        async with asyncio.timeout(settings.DRAGONFLY_UPSTREAM_FIRST_TOKEN_TIMEOUT):
            response = await session().post(
                url,
                data=body,
                headers={
                    "Authorization": f"Bearer {key}",
                    "Content-Type": "application/json",
                },
            )
    except TimeoutError:
        raise UpstreamError("timed out waiting for the response") from None
    except aiohttp.ClientConnectorError:
        raise UpstreamError("could not connect") from None
    except aiohttp.ClientError as exc:
        raise UpstreamError(f"connection failed ({type(exc).__name__})") from None
    if response.status >= 400:
        response.release()  # the body is never read, logged or forwarded
        raise status_error(response.status)
    return response
