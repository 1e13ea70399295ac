"""The response side of one /v1 request: headers every answer carries, and how it is sent."""

from __future__ import annotations

import asyncio

import orjson

from gateway.errors import GatewayError

JSON = b"application/json"
SSE = b"text/event-stream"


class Response:
    def __init__(self, send, request_id: str, render_error=None) -> None:
        self._send = send
        self.request_id = request_id
        # (error, request id) -> body: the endpoint's error shape (the seed's unless told otherwise)
        self.render_error = render_error or (lambda error, rid: error.body(rid))
        self.headers: list[tuple[bytes, bytes]] = [(b"x-df-market-request-id", request_id.encode())]
        self.started = False
        self.finished = False
        self.status = 0
        self.disconnected = False
        self._watcher: asyncio.Task | None = None

    def add(self, headers: list[tuple[bytes, bytes]]) -> None:
        self.headers.extend(headers)

    async def start(self, status: int, content_type: bytes, extra=(), length: int | None = None):
        headers = [(b"content-type", content_type), *self.headers, *extra]
        if length is not None:
            headers.append((b"content-length", str(length).encode()))
        if content_type == SSE:
            headers += [(b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no")]
        self.started = True
        self.status = status
        await self._send({"type": "http.response.start", "status": status, "headers": headers})

    async def body(self, data: bytes, *, more: bool) -> None:
        if not more:
            self.stop_watching()
            self.finished = True
        await self._send({"type": "http.response.body", "body": data, "more_body": more})

    async def complete(self, status: int, content_type: bytes, data: bytes, extra=()) -> None:
        self.stop_watching()  # from here on a disconnect cannot cut the request short
        await self.start(status, content_type, extra, length=len(data))
        await self.body(data, more=False)

    async def json(self, status: int, payload, extra=()) -> None:
        await self.complete(status, JSON, orjson.dumps(payload), extra)

    async def error(self, error: GatewayError) -> None:
        body = self.render_error(error, self.request_id)
        await self.complete(error.status, JSON, body, error.headers)

    def watch_disconnect(self, receive) -> None:
        """Cancel the current task when the client hangs up (the finally paths still settle)."""
        task = asyncio.current_task()
        assert task is not None

        async def watch() -> None:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    self.disconnected = True
                    task.cancel()
                    return

        self._watcher = asyncio.get_running_loop().create_task(watch())

    def stop_watching(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            self._watcher = None
