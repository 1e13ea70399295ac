"""Small raw-ASGI helpers for the simulator: one request's context, JSON and error replies."""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from simulator.knobs import KeyStats, Knobs

Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]

ERROR_PREFIX = "simulated upstream error: "
JSON_TYPE = b"application/json"
SSE_TYPE = b"text/event-stream"

_ids = itertools.count(1)
_ID_PREFIX = os.urandom(4).hex()


def new_id() -> str:
    """A short id, unique in this process and unlikely to repeat across restarts."""
    return f"{_ID_PREFIX}{next(_ids):012x}"


class Ctx:
    """One request as the handlers see it."""

    __slots__ = ("body", "key_name", "knobs", "path", "scope", "send", "stats")

    def __init__(self, scope: dict, send: Send, path: str, body: bytes) -> None:
        self.scope = scope
        self.send = send
        self.path = path
        self.body = body
        self.key_name = ""
        self.knobs = Knobs()
        self.stats: KeyStats | None = None

    def count_status(self, status: int) -> None:
        if self.stats is not None:
            statuses = self.stats.statuses
            statuses[status] = statuses.get(status, 0) + 1

    async def respond(
        self,
        status: int,
        body: bytes,
        content_type: bytes = JSON_TYPE,
        extra: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        self.count_status(status)
        headers = [(b"content-type", content_type), (b"content-length", b"%d" % len(body))]
        if extra:
            headers.extend(extra)
        await self.send({"type": "http.response.start", "status": status, "headers": headers})
        await self.send({"type": "http.response.body", "body": body})

    async def json(self, status: int, payload: object) -> None:
        await self.respond(status, orjson.dumps(payload))

    async def error(
        self,
        status: int,
        message: str,
        type_: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        extra: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        """An OpenAI-shaped error: ``{"error": {"message", "type", "param", "code"}}``."""
        payload = {
            "error": {
                "message": ERROR_PREFIX + message,
                "type": type_,
                "param": param,
                "code": code,
            }
        }
        await self.respond(status, orjson.dumps(payload), extra=extra)

    async def start_stream(self, content_type: bytes = SSE_TYPE) -> None:
        self.count_status(200)
        headers = [(b"content-type", content_type), (b"cache-control", b"no-cache")]
        await self.send({"type": "http.response.start", "status": 200, "headers": headers})

    async def chunk(self, data: bytes) -> None:
        await self.send({"type": "http.response.body", "body": data, "more_body": True})

    async def end_stream(self, data: bytes = b"") -> None:
        await self.send({"type": "http.response.body", "body": data, "more_body": False})


async def read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None when it is larger than ``limit`` bytes."""
    message = await receive()
    body = message.get("body", b"")
    if not message.get("more_body", False):
        return body if len(body) <= limit else None
    parts = [body]
    size = len(body)
    while message.get("more_body", False):
        message = await receive()
        if message["type"] != "http.request":
            break
        part = message.get("body", b"")
        size += len(part)
        if size > limit:
            return None
        parts.append(part)
    return b"".join(parts)


def bearer_key(headers: list[tuple[bytes, bytes]]) -> str:
    """The bearer token of the Authorization header ('' when absent or empty)."""
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").strip().partition(" ")
            if scheme.lower() != "bearer":
                return ""
            return token.strip()
    return ""


async def sleep_until(loop: Any, deadline: float) -> None:
    """Sleep until the loop clock reaches ``deadline`` (absolute, so pacing does not drift)."""
    delay = deadline - loop.time()
    if delay > 0:
        await asyncio.sleep(delay)


async def drop_connection(ctx: Ctx, body: bytes) -> None:
    """Start a response announcing ``body`` but send only half of it, then hang up.

    Returning from the app with an incomplete response makes the server close the connection,
    so the client sees a truncated body (no clean end of the response).
    """
    ctx.count_status(200)
    headers = [(b"content-type", JSON_TYPE), (b"content-length", b"%d" % len(body))]
    await ctx.send({"type": "http.response.start", "status": 200, "headers": headers})
    await ctx.send(
        {"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True}
    )
