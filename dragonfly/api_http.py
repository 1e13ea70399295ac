"""HTTP/1.1 for the `api` role: llhttp's parser (httptools) on uvloop's own sockets, inside Daphne's
server.

Daphne reads each request through Twisted: its line parser and header objects, a request set up
through Deferreds, each answer's headers sanitised one by one and its writes buffered until the
reactor's next poll. In a process that serves only /v1 (DRAGONFLY_ROLE=api) that was the largest
single piece of a request's CPU (docs/performance.md, "What is left"). Here a connection is an
asyncio protocol on the event loop's native transport (uvloop, in C) and parses with llhttp (in C),
as the upstream client already does. Everything else stays Daphne's: its command line, its
`Server` (application instances, the sweeps, timeouts, shutdown and the access log) sees each
request as a protocol of its own, as it sees Twisted's.

The edge's rules are dragonfly/edge.py's, answered the same way: the same limits on the request
line and headers (431, 414), a Content-Length that is not a number (400), malformed HTTP (400), a
body over DRAGONFLY_MAX_BODY_BYTES refused from its Content-Length before one byte is read and
from a chunked body as soon as it passes the cap (413, with the address's rate-limit headers on
/v1), a websocket upgrade (404), each in the contract's JSON, then the connection lingers, reading
and dropping, before it closes.

A connection serves one request at a time, as Twisted's does. What the client sends while one is
answered is kept unparsed (up to BUFFERED_BYTES, then the connection stops reading) and parsed once
the answer has ended; reading on meanwhile is what tells a client's leaving. A connection idle
between requests for DRAGONFLY_IDLE_CONNECTION_SECONDS is closed.

dragonfly/daphne_server.py listens with `Connection`s (`ApiServer`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections import deque
from urllib.parse import unquote

import httptools
from daphne.utils import parse_x_forwarded_for
from django.conf import settings

from dragonfly import edge

logger = logging.getLogger("dragonfly.api_http")

BUFFERED_BYTES = 16384  # Twisted's `_optimisticEagerReadSize`
NO_BODY_STATUSES = frozenset((204, 304))
# Bytes looked for by value: `b"_" in name` costs CPython 3.11 a TypeError raised and cleared.
_UNDERSCORE, _CR, _LF = ord("_"), ord("\r"), ord("\n")


class Request:
    """One request as Daphne's server holds it (`Server.connections`): what Twisted's request gives
    it (`handle_reply`, `handle_exception`, `check_timeouts`, `basic_error`, `duration`), here
    writing to its connection's transport."""

    __slots__ = (
        "body", "chunked", "connection", "finished", "head", "head_only", "keep_alive", "queue",
        "scope", "sent", "server", "started", "status", "version",
    )  # fmt: skip

    def __init__(self, connection: Connection, scope: dict, body: bytes, keep_alive: bool) -> None:
        self.connection = connection
        self.server = connection.server
        self.scope = scope
        self.body = body
        self.keep_alive = keep_alive
        self.head_only = scope["method"] == "HEAD"
        self.version = scope["http_version"].encode()
        self.started = 0.0
        self.queue: asyncio.Queue | None = None
        self.head: bytes | None = None  # the status line and headers, sent with the first body
        self.chunked = False
        self.finished = False
        self.status = 0
        self.sent = 0

    def start(self) -> None:
        """Hand the request to a new application instance."""
        self.started = time.time()
        self.server.protocol_connected(self)
        self.queue = self.server.create_application(self, self.scope)
        if self.queue is not None:
            self.queue.put_nowait({"type": "http.request", "body": self.body, "more_body": False})
            self.body = b""

    def handle_reply(self, message: dict) -> None:
        if self.finished or self.connection.transport is None:
            return
        kind = message["type"]
        if kind == "http.response.start":
            if self.head is not None or self.status:
                raise ValueError("HTTP response has already been started")
            self.status = message["status"]
            self.head, self.chunked = response_head(
                self.version,
                self.status,
                message.get("headers", ()),
                server_name=self.server.server_name,
                keep_alive=self.keep_alive,
                head_only=self.head_only,
            )
        elif kind == "http.response.body":
            if self.head is None:
                raise ValueError(f"HTTP response has not yet been started but got {kind}")
            body = message.get("body", b"")
            more = message.get("more_body", False)
            if self.head_only or self.status in NO_BODY_STATUSES:
                body = b""
            self.sent += len(body)
            if self.chunked:
                body = (b"%x\r\n%s\r\n" % (len(body), body) if body else b"") + (
                    b"" if more else b"0\r\n\r\n"
                )
            self.connection.transport.write(self.head + body)
            self.head = b""
            if not more:
                self.finish()
        else:
            raise ValueError(f"Cannot handle message type {kind}!")

    def finish(self) -> None:
        self.finished = True
        self._disconnect()
        if self.server.action_logger:  # Daphne's --access-log
            self.server.log_action("http", "complete", self._log_details())
        self.connection.request_done(self)

    def lost(self) -> None:
        """The client left before the answer ended."""
        if not self.finished:
            self.finished = True
            self._disconnect()

    def _disconnect(self) -> None:
        if self.queue is not None:
            self.queue.put_nowait({"type": "http.disconnect"})
        if self in self.server.connections:
            self.server.protocol_disconnected(self)

    def _log_details(self) -> dict:
        client = self.scope.get("client")
        path = self.scope["raw_path"] + (b"?" + q if (q := self.scope["query_string"]) else b"")
        return {
            "path": path.decode("ascii", "replace"),
            "status": self.status,
            "method": self.scope["method"],
            "client": f"{client[0]}:{client[1]}" if client else None,
            "time_taken": self.duration(),
            "size": self.sent,
        }

    def handle_exception(self, exception: BaseException) -> None:
        self.basic_error(500, b"Internal Server Error", "Exception inside application.")

    def basic_error(self, status: int, status_text: bytes, body: str) -> None:
        """A server-level error in the contract's JSON; once an answer has begun, the connection
        is closed instead, since the client cannot be told more."""
        if self.finished:
            return
        if self.status:
            self.keep_alive = False
            self.finish()
            return
        self.keep_alive = False
        transport = self.connection.transport
        if transport is not None:
            transport.write(edge.refusal(self.scope["raw_path"], status, body, extra=None))
        self.status = status
        self.finish()

    def check_timeouts(self) -> None:
        timeout = self.server.http_timeout
        if timeout and self.duration() > timeout:
            if self.status:
                logger.warning("Application timed out while sending response")
                self.keep_alive = False
                self.finish()
            else:
                self.basic_error(
                    503, b"Service Unavailable", "Application failed to respond within time limit."
                )

    def duration(self) -> float:
        return time.time() - self.started if self.started else 0.0


def response_head(
    version: bytes, status: int, headers, *, server_name: str, keep_alive: bool, head_only: bool
) -> tuple[bytes, bool]:
    """The status line and `headers`, framed as Twisted frames them, and whether the body is
    chunked: it is when HTTP/1.1 has no Content-Length and the answer has a body. A line break in
    a header becomes a space; Daphne names itself unless the application has named a server."""
    lines = [b"HTTP/%s %d %s\r\n" % (version, status, edge.reason(status))]
    length = server_named = False
    for name, value in headers:
        lowered = name.lower()
        if lowered == b"content-length":
            length = True
        elif lowered == b"server":
            server_named = True
        if _CR in value or _LF in value or _CR in name or _LF in name:
            name, value = _one_line(name), _one_line(value)
        lines += (name, b": ", value, b"\r\n")
    if not server_named and server_name:
        lines += (b"server: ", _one_line(server_name.encode()), b"\r\n")
    chunked = (
        version == b"1.1"
        and not length
        and not head_only
        and status >= 200
        and status not in NO_BODY_STATUSES
    )
    if chunked:
        lines.append(b"Transfer-Encoding: chunked\r\n")
    if not keep_alive:
        lines.append(b"Connection: close\r\n")
    lines.append(b"\r\n")
    return b"".join(lines), chunked


def _one_line(text: bytes) -> bytes:
    return text.replace(b"\r\n", b" ").replace(b"\r", b" ").replace(b"\n", b" ")


class Connection(asyncio.Protocol):
    """One client connection: parses requests with llhttp and answers them one at a time."""

    def __init__(self, server) -> None:  # Daphne's Server (dragonfly/daphne_server.py)
        self.server = server
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.client: list | None = None
        self.address: list | None = None
        self.current: Request | None = None
        self.waiting: deque[Request] = deque()  # pipelined in the same read as the current one
        self.buffered: list[bytes] = []  # read while a request is answered, not parsed yet
        self.refused = False
        self.refusal: tuple[int, str, str | None] | None = None  # to answer once current ends
        self.last_active = 0.0
        self.timer: asyncio.TimerHandle | None = None
        self._message_begun()

    def _message_begun(self) -> None:
        self.in_head = True
        self.head_bytes = 0
        self.counted = 0  # bytes of the request line and the header lines already seen whole
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.length: int | None = None
        self.body: list[bytes] = []
        self.body_bytes = 0
        self.expect_continue = False

    # asyncio's side

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self.transport = transport
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple):  # a unix socket's peer has no address
            sock = transport.get_extra_info("sockname")
            self.client = [str(peer[0]), peer[1]]
            self.address = [str(sock[0]), sock[1]]
        self.last_active = time.monotonic()
        self.timer = asyncio.get_running_loop().call_later(
            settings.DRAGONFLY_IDLE_CONNECTION_SECONDS, self._idle_check
        )

    def data_received(self, data: bytes) -> None:
        if self.refused:
            return  # lingering: read and dropped
        self.last_active = time.monotonic()
        if self.current is not None:
            self.buffered.append(data)
            if sum(map(len, self.buffered)) > BUFFERED_BYTES and self.transport is not None:
                self.transport.pause_reading()
            return
        self._parse(data)

    def _parse(self, data: bytes) -> None:
        if self.in_head:
            self.head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:  # not taken: the request was answered as HTTP/1.1
            pass
        except httptools.HttpParserCallbackError as exc:  # this module's fault, not the client's
            logger.error("reading a request failed", exc_info=exc.__context__)
            self.refuse(500, "The server failed to read this request.")
            return
        except httptools.HttpParserError as exc:
            bad_length = str(exc) == "Invalid character in Content-Length"  # llhttp's words
            self.refuse(*(edge.LENGTH_NOT_A_NUMBER if bad_length else edge.NOT_HTTP))
            return
        if self.in_head and not self.refused:
            self._check_partial_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.timer is not None:
            self.timer.cancel()
        if self.current is not None:
            self.current.lost()
        self.waiting.clear()

    def _idle_check(self) -> None:
        if self.transport is None:
            return
        idle = time.monotonic() - self.last_active
        if (
            self.current is None
            and not self.refused
            and idle >= settings.DRAGONFLY_IDLE_CONNECTION_SECONDS
        ):
            self.transport.close()
            return
        self.timer = asyncio.get_running_loop().call_later(
            max(settings.DRAGONFLY_IDLE_CONNECTION_SECONDS - idle, 1.0), self._idle_check
        )

    # llhttp's callbacks

    def on_message_begin(self) -> None:
        self._message_begun()

    def on_url(self, url: bytes) -> None:
        self.url += url
        if len(self.url) > edge.MAX_LINE_BYTES:
            self.refuse(*edge.REQUEST_LINE_TOO_LONG)

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.refused:
            return
        line = len(name) + len(value) + 2
        if line > edge.MAX_LINE_BYTES:
            self.refuse(*edge.HEADER_TOO_LONG)
            return
        if not self.headers:
            self.counted = len(self.url) + 16  # the request line: method, spaces, version
        self.counted += line
        if self.counted > edge.MAX_HEADER_BYTES:
            self.refuse(*edge.HEADERS_TOO_LARGE)
            return
        if len(self.headers) >= edge.MAX_HEADERS:
            self.refuse(*edge.TOO_MANY_HEADERS)
            return
        lowered = name.lower()
        if lowered == b"content-length":  # llhttp has checked it is a number
            self.length = int(value)
        elif lowered == b"expect":
            self.expect_continue = value.lower() == b"100-continue"
        self.headers.append((lowered, value))

    def _check_partial_head(self) -> None:
        """Bound a head still arriving, before llhttp has a whole line of it to show."""
        partial = self.head_bytes - max(self.counted, len(self.url))
        if partial > edge.MAX_LINE_BYTES + 2:
            self.refuse(*(edge.HEADER_TOO_LONG if self.url else edge.REQUEST_LINE_TOO_LONG))
        elif self.head_bytes > edge.MAX_HEADER_BYTES + 2 * edge.MAX_HEADERS:
            self.refuse(*edge.HEADERS_TOO_LARGE)

    def on_headers_complete(self) -> None:
        if self.refused:
            return
        self.in_head = False
        if self.parser.should_upgrade() and any(
            name == b"upgrade" and value.lower() == b"websocket" for name, value in self.headers
        ):
            self.refuse(*edge.NO_WEBSOCKET)
            return
        if self.length is not None and self.length > settings.DRAGONFLY_MAX_BODY_BYTES:
            self.refuse(*edge.body_too_large(), address=self._client_address())
            return
        if self.expect_continue and self.transport is not None:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        if self.refused:
            return
        self.body_bytes += len(body)
        if self.body_bytes > settings.DRAGONFLY_MAX_BODY_BYTES:
            self.refuse(*edge.body_too_large(), address=self._client_address())
            return
        self.body.append(body)

    def on_message_complete(self) -> None:
        if self.refused:
            return
        request = self._request()
        self._message_begun()  # what follows is the next request's head
        if request is None:
            return
        if self.current is None:
            self.current = request
            request.start()
        else:
            self.waiting.append(request)

    # requests

    def _request(self) -> Request | None:
        raw_path, _, query = self.url.partition(b"?")
        try:
            path = unquote(raw_path.decode("ascii"))
            query.decode("ascii")
        except UnicodeDecodeError:
            self.refuse(400, "The request's path or query string is not ASCII.")
            return None
        server = self.server
        root_path = server.root_path
        headers = []
        for name, value in self.headers:
            if _UNDERSCORE in name:  # CVE-2015-0219, as Daphne drops them
                continue
            if name == b"daphne-root-path":
                root_path = unquote(value.decode("ascii", "replace"))
            else:
                headers.append((name, value))
        try:
            client, scheme = self._forwarded()
        except ValueError:  # not UTF-8 (UnicodeDecodeError)
            self.refuse(400, "The request's X-Forwarded-* headers are not valid.")
            return None
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": self.parser.get_http_version(),
            "method": self.parser.get_method().decode("ascii"),
            "path": path,
            "raw_path": raw_path,
            "root_path": root_path,
            "scheme": scheme,
            "query_string": query,
            "headers": headers,
            "client": client,
            "server": self.address,
        }
        body = b"".join(self.body)
        keep_alive = self.parser.should_keep_alive() and not self.parser.should_upgrade()
        return Request(self, scope, body, keep_alive)

    def _forwarded(self) -> tuple[list | None, str]:
        """The client's address and scheme, from the proxy's headers when Daphne was told to
        trust them (--proxy-headers), as Daphne reads them."""
        server = self.server
        if not server.proxy_forwarded_address_header:
            return self.client, "http"
        return parse_x_forwarded_for(
            dict(self.headers),
            server.proxy_forwarded_address_header,
            server.proxy_forwarded_port_header,
            server.proxy_forwarded_proto_header,
            self.client,
            "http",
        )

    def _client_address(self) -> str:
        from gateway import client_limits

        try:
            client, _ = self._forwarded()
        except ValueError:  # not UTF-8 (UnicodeDecodeError)
            client = self.client
        return client_limits.address({"client": client or ["", 0]})

    def request_done(self, request: Request) -> None:
        transport = self.transport
        self.current = None
        if transport is None:
            return
        if self.refusal is not None:
            self._answer(*self.refusal)
            return
        if not request.keep_alive:
            transport.close()  # once what is written has been sent
            return
        self.last_active = time.monotonic()
        if self.waiting:
            self.current = self.waiting.popleft()
            self.current.start()
            return
        if self.buffered:
            data = b"".join(self.buffered)
            self.buffered.clear()
            transport.resume_reading()
            self._parse(data)

    # refusals

    def refuse(self, status: int, message: str, *, address: str | None = None) -> None:
        """Answer `status`, stop parsing, and linger (dragonfly/edge.py); after the answer in
        progress, if one is. With the client's `address` on a /v1 path the answer waits for its
        rate-limit headers, as the edge's does."""
        if self.refused:
            return
        self.refused = True
        self.waiting.clear()
        if self.current is not None:
            self.refusal = (status, message, address)
            return
        self._answer(status, message, address)

    def _answer(self, status: int, message: str, address: str | None) -> None:
        if address is not None and self.url.startswith(b"/v1/"):
            counting = edge.address_headers(address)
            counting.add_done_callback(
                lambda done: self._write(status, message, edge.counted(done))
            )
            return
        self._write(status, message, None)

    def _write(self, status: int, message: str, extra: list[tuple[bytes, bytes]] | None) -> None:
        transport = self.transport
        if transport is None:
            return
        transport.write(edge.refusal(self.url or None, status, message, extra))
        self.buffered.clear()
        if not transport.is_reading():  # stopped while a request was answered: read to drop
            transport.resume_reading()
        if not transport.can_write_eof():
            transport.close()
            return
        transport.write_eof()
        asyncio.get_running_loop().call_later(edge.LINGER_SECONDS, transport.close)


def parse_endpoint(description: str, backlog: int) -> dict:
    """A Twisted server endpoint description (what Daphne's command line makes of -b/-p, -u,
    --fd and -e) as the arguments to `listen` with: `tcp:`, `tcp6:`, `unix:` and `fd:` only;
    `backlog` unless it names one."""
    kind, *parts = _split_unescaped(description)
    positional = [part for part in parts if "=" not in part]
    named = dict(part.split("=", 1) for part in parts if "=" in part)
    backlog = int(named.get("backlog", backlog))
    if kind in ("tcp", "tcp6"):
        port = int(positional[0] if positional else named["port"])
        host = named.get("interface") or ("::" if kind == "tcp6" else "0.0.0.0")  # noqa: S104
        return {"kind": "tcp", "host": host, "port": port, "backlog": backlog}
    if kind == "unix":
        path = positional[0] if positional else named["address"]
        return {"kind": "unix", "path": path, "backlog": backlog, "mode": named.get("mode")}
    if kind == "fd":
        return {"kind": "fd", "fileno": int(positional[0] if positional else named["fileno"])}
    raise ValueError(
        f"The api role listens on tcp:, tcp6:, unix: and fd: endpoints, not {kind}: ({description})"
    )


def _split_unescaped(description: str) -> list[str]:
    parts, current, escaped = [], "", False
    for char in description:
        if escaped:
            current += char
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ":":
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return parts


async def listen(loop, factory, endpoint: dict) -> asyncio.Server:
    if endpoint["kind"] == "tcp":
        return await loop.create_server(
            factory, endpoint["host"], endpoint["port"], backlog=endpoint["backlog"]
        )
    if endpoint["kind"] == "unix":
        listener = await loop.create_unix_server(
            factory, endpoint["path"], backlog=endpoint["backlog"]
        )
        if endpoint["mode"]:
            os.chmod(endpoint["path"], int(endpoint["mode"], 8))
        return listener
    sock = socket.socket(fileno=endpoint["fileno"])
    if sock.family == socket.AF_UNIX:
        return await loop.create_unix_server(factory, sock=sock)
    return await loop.create_server(factory, sock=sock)
