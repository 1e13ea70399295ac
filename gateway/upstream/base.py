"""What every upstream adapter shares: the pooled client (client.py) and the error that drives failover.

`UpstreamError.retryable` answers one question: may another listing succeed where this one failed?
The table in statuses.py decides it for each status (a request the provider calls invalid is
permanent: every listing would refuse it); errors without a status (connect errors, timeouts,
malformed answers) are retryable.
"""

from __future__ import annotations

import asyncio

from django.conf import settings

from gateway import runtime
from gateway.upstream import statuses
from gateway.upstream.client import Client, ConnectError, HTTPError, Response


class UpstreamError(Exception):
    def __init__(self, reason: str, *, status: int | None = None, retryable: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason  # ours, never the upstream's body
        self.status = status
        self.retryable = retryable


def status_error(status: int, *, reason: str | None = None) -> UpstreamError:
    return UpstreamError(
        reason or f"HTTP {status}", status=status, retryable=statuses.fails_over(status)
    )


def session() -> Client:
    """The process's pooled client for the running loop (created lazily: clients are loop-bound)."""
    state = runtime.current()
    client = state.upstream
    if client is None or client.closed:
        client = Client(
            connect_timeout=settings.DRAGONFLY_UPSTREAM_CONNECT_TIMEOUT,
            total_timeout=settings.DRAGONFLY_UPSTREAM_TOTAL_TIMEOUT,
        )
        state.upstream = client
    return client


async def post(url: str, *, key: str, body: bytes, client: Client | None = None) -> Response:
    """POST a JSON body; the response head, or UpstreamError (send())."""
    return await send("POST", url, key=key, body=body, client=client)


async def get(url: str, *, key: str, client: Client | None = None) -> Response:
    return await send("GET", url, key=key, client=client)


async def send(
    method: str,
    url: str,
    *,
    key: str,
    body: bytes | None = None,
    client: Client | None = None,
) -> Response:
    """Send and wait for the response head within the first-token timeout; errors, and any status
    of 400 or more, as UpstreamError. `client` is the caller's session (the probes keep their own,
    with their timeouts), else this loop's pooled one."""
    headers = {"Authorization": f"Bearer {key}"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    try:
        async with asyncio.timeout(settings.DRAGONFLY_UPSTREAM_FIRST_TOKEN_TIMEOUT):
            response = await (client or session()).request(method, url, headers=headers, body=body)
    except TimeoutError:
        raise UpstreamError("timed out waiting for the response") from None
    except ConnectError:
        raise UpstreamError("could not connect") from None
    except ValueError:  # a URL or key that cannot go on the wire as it is (client.py)
        raise UpstreamError("the request could not be sent") from None
    except HTTPError as exc:
        raise UpstreamError(f"connection failed ({type(exc).__name__})") from None
    if response.status >= 400:
        response.release()  # the body is never read, logged or forwarded
        raise status_error(response.status)
    return response


def reported_count(value: object) -> int | None:
    """A count an upstream reported (tokens, characters, milliseconds): a non-negative JSON
    integer, else None (absent, negative, a float or a boolean: not a count to bill or compare)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def model_named(data: object) -> str:
    """The `model` a JSON answer names ("" when it names none), capped at 100 characters: what the
    authenticity probes compare with the model asked for (market/authenticity.py)."""
    model = data.get("model") if isinstance(data, dict) else None
    return model[:100] if isinstance(model, str) else ""


async def read_all(response: Response, *, max_bytes: int, what: str) -> bytes:
    """The whole body, up to `max_bytes`; UpstreamError if it is larger or the connection breaks.
    `what` names it in the error."""
    parts: list[bytes] = []
    size = 0
    try:
        async for part in response.chunks():
            size += len(part)
            if size > max_bytes:
                raise UpstreamError(f"{what} was larger than we accept")
            parts.append(part)
    except (HTTPError, TimeoutError):
        raise UpstreamError(f"connection lost while reading {what}") from None
    finally:
        response.release()
    return b"".join(parts)
