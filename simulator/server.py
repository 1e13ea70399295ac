"""A small, fast HTTP/1.1 server for one ASGI app, on plain asyncio.

Why it exists: on this project's machines uvicorn runs with the pure-python h11 parser
(httptools and uvloop are not installed), which tops out near 5,000 trivial requests/s on
one core; the simulator must never be the benchmark's bottleneck. This server speaks just
what the simulator's clients need: keep-alive, pipelining, Content-Length and chunked
request bodies, ``Expect: 100-continue``, and chunked responses for streams. An app that
returns without finishing its response gets its connection closed (a dropped stream).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

MAX_HEAD_BYTES = 64 * 1024
_REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}
_ASGI = {"version": "3.0", "spec_version": "2.3"}


def _status_line(status: int) -> bytes:
    return b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b"Unknown"))


def _parse_chunked(buf: bytearray, start: int) -> tuple[bytes, int] | None:
    """Decode a chunked body from ``buf[start:]``: (body, end offset), or None if incomplete."""
    parts: list[bytes] = []
    pos = start
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        size = int(bytes(buf[pos:eol]).split(b";", 1)[0].strip() or b"0", 16)
        pos = eol + 2
        if size == 0:
            # optional trailers, then an empty line
            while True:
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    return None
                if eol == pos:
                    return b"".join(parts), eol + 2
                pos = eol + 2
        if len(buf) < pos + size + 2:
            return None
        parts.append(bytes(buf[pos : pos + size]))
        pos += size + 2


class _Connection(asyncio.Protocol):
    def __init__(self, server: BuiltinServer) -> None:
        self.server = server
        self.app = server.app
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.task: asyncio.Task | None = None
        self.head: tuple[dict, int, bool, bool] | None = None  # scope, length, chunked, keep
        self.body_start = 0
        self.closed = False
        self.write_paused = False
        self.drain: asyncio.Future | None = None
        self.reading_paused = False
        self.peer: tuple[str, int] | None = None

    # asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.peer = transport.get_extra_info("peername")
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            # stream chunks are small writes: never let Nagle hold them back
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server.connections.discard(self)
        if self.server.closing and not self.server.connections:
            self.server.drained.set()
        if self.task is not None and not self.task.done():
            self.task.cancel()
        if self.drain is not None and not self.drain.done():
            self.drain.set_result(None)

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.drain is not None and not self.drain.done():
            self.drain.set_result(None)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.task is None:
            self._next_request()
        elif len(self.buf) > MAX_HEAD_BYTES and not self.reading_paused:
            self.reading_paused = True
            self.transport.pause_reading()  # type: ignore[union-attr]

    # request parsing
    def _next_request(self) -> None:
        buf = self.buf
        if self.head is None:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEAD_BYTES:
                    self._reject(431)
                return
            try:
                self.head = self._parse_head(bytes(buf[:end]))
            except ValueError:
                self._reject(400)
                return
            self.body_start = end + 4
        scope, length, chunked, keep_alive = self.head
        if chunked:
            try:
                parsed = _parse_chunked(buf, self.body_start)
            except ValueError:
                self._reject(400)
                return
            if parsed is None:
                return
            body, consumed = parsed
        else:
            consumed = self.body_start + length
            if len(buf) < consumed:
                return
            body = bytes(buf[self.body_start : consumed])
        del buf[:consumed]
        self.head = None
        self.task = asyncio.get_running_loop().create_task(self._run(scope, body, keep_alive))

    def _parse_head(self, head: bytes) -> tuple[dict, int, bool, bool]:
        lines = head.split(b"\r\n")
        method, target, version = lines[0].split(b" ")
        if not version.startswith(b"HTTP/1."):
            raise ValueError("not HTTP/1.x")
        headers = []
        length = 0
        chunked = False
        keep_alive = version == b"HTTP/1.1"
        expect_continue = False
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep:
                raise ValueError("bad header line")
            name = name.strip().lower()
            value = value.strip()
            headers.append((name, value))
            if name == b"content-length":
                length = int(value)
                if length < 0:
                    raise ValueError("negative content-length")
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"connection":
                lowered = value.lower()
                if b"close" in lowered:
                    keep_alive = False
                elif b"keep-alive" in lowered:
                    keep_alive = True
            elif name == b"expect":
                expect_continue = value.lower() == b"100-continue"
        if expect_continue:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # type: ignore[union-attr]
        raw_path, _, query = target.partition(b"?")
        scope = {
            "type": "http",
            "asgi": _ASGI,
            "http_version": version[5:].decode(),
            "method": method.decode("ascii"),
            "scheme": "http",
            "path": unquote(raw_path.decode("latin-1")),
            "raw_path": raw_path,
            "query_string": query,
            "root_path": "",
            "headers": headers,
            "client": self.peer,
            "server": self.server.sockname,
        }
        return scope, length, chunked, keep_alive

    def _reject(self, status: int) -> None:
        body = _REASONS.get(status, b"Error")
        self.transport.write(  # type: ignore[union-attr]
            _status_line(status)
            + b"content-type: text/plain\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
            % len(body)
            + body
        )
        self.transport.close()  # type: ignore[union-attr]

    # running the app
    async def _run(self, scope: dict, body: bytes, keep_alive: bool) -> None:
        transport = self.transport
        assert transport is not None
        sent_request = False
        disconnected = asyncio.get_running_loop().create_future()
        state: dict[str, Any] = {
            "status": 0,
            "headers": None,
            "chunked": False,
            "done": False,
            "head_sent": False,
        }

        async def receive() -> dict:
            nonlocal sent_request
            if not sent_request:
                sent_request = True
                return {"type": "http.request", "body": body, "more_body": False}
            await disconnected
            return {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            if self.closed:
                raise ConnectionResetError("client disconnected")
            kind = message["type"]
            if kind == "http.response.start":
                state["status"] = message["status"]
                state["headers"] = message.get("headers") or []
                return
            if kind != "http.response.body" or state["status"] == 0 or state["done"]:
                raise RuntimeError(f"unexpected ASGI message {kind!r}")
            data = message.get("body", b"")
            more = message.get("more_body", False)
            if not state["head_sent"]:
                state["head_sent"] = True
                headers = state["headers"]
                has_length = any(name.lower() == b"content-length" for name, _ in headers)
                parts = [_status_line(state["status"])]
                parts.extend(name + b": " + value + b"\r\n" for name, value in headers)
                if not has_length:
                    if more:
                        state["chunked"] = True
                        parts.append(b"transfer-encoding: chunked\r\n")
                    else:
                        parts.append(b"content-length: %d\r\n" % len(data))
                if not keep_alive:
                    parts.append(b"connection: close\r\n")
                parts.append(b"\r\n")
                head = b"".join(parts)
            else:
                head = b""
            if state["chunked"]:
                payload = b"%x\r\n%s\r\n" % (len(data), data) if data else b""
                if not more:
                    payload += b"0\r\n\r\n"
                transport.write(head + payload)
            else:
                transport.write(head + data if head else data)
            if not more:
                state["done"] = True
            if self.write_paused and not self.closed:
                self.drain = asyncio.get_running_loop().create_future()
                await self.drain

        try:
            await self.app(scope, receive, send)
        except asyncio.CancelledError:
            return
        except Exception:
            if not state["head_sent"] and not self.closed:
                self._reject(500)
            else:
                transport.abort()
            return
        finally:
            if not disconnected.done():
                disconnected.set_result(None)
        if not state["done"]:
            # the app hung up on purpose (a dropped stream) or forgot to answer
            if not state["head_sent"] and not self.closed:
                self._reject(500)
            else:
                transport.close()
            return
        if not keep_alive or self.closed or self.server.closing:
            transport.close()
            return
        self.task = None
        if self.reading_paused:
            self.reading_paused = False
            transport.resume_reading()
        if self.buf:
            self._next_request()


class BuiltinServer:
    """``await start()``, then ``await close()``; ``port`` is the bound port."""

    def __init__(
        self, app: Any, host: str = "127.0.0.1", port: int = 0, sock: socket.socket | None = None
    ) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.sock = sock
        self.connections: set[_Connection] = set()
        self.sockname: tuple[str, int] | None = None
        self.closing = False
        self.drained = asyncio.Event()
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> int:
        loop = asyncio.get_running_loop()
        if self.sock is not None:
            self._server = await loop.create_server(
                lambda: _Connection(self), sock=self.sock, backlog=2048
            )
        else:
            self._server = await loop.create_server(
                lambda: _Connection(self),
                self.host,
                self.port,
                backlog=2048,
                reuse_address=True,
            )
        sockname = self._server.sockets[0].getsockname()
        self.sockname = (sockname[0], sockname[1])
        self.port = sockname[1]
        return self.port

    async def close(self, grace: float = 1.0) -> None:
        """Stop accepting, let responses in flight finish for ``grace`` s, then hang up."""
        if self._server is None:
            return
        self.closing = True
        self._server.close()
        for conn in list(self.connections):
            if conn.task is None and conn.transport is not None:
                conn.transport.close()
        if self.connections:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.drained.wait(), timeout=grace)
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.abort()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), timeout=1.0)
        self._server = None
