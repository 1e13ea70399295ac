"""The upstream HTTP/1.1 client: keep-alive connections pooled per origin, responses parsed by
httptools (llhttp, in C), bodies streamed as they arrive.

Every request the gateway relays makes one upstream call. In a micro-benchmark (3,000 sequential
calls to the simulator on uvloop) one cost 251-290 µs of CPU through aiohttp's client (a request
object, a headers multidict, a URL object, a payload writer, tracing hooks and timers, per call),
85-95 through this one, and 43-55 as a bare socket write and parse (docs/performance.md,
"Optimisations"). It does the one thing the upstream APIs need.

What it does: http and https (the system's CA store, SNI); a request with a byte body, sent in one
write; the response head awaited, the body streamed as it arrives (Content-Length, chunked, or up
to the connection's close); back-pressure (the socket is not read while more than BUFFER_LIMIT
bytes wait unread); a connection reused only after its response came in whole (or, for a stream
read up to `[DONE]`, once the rest of its framing has: Response.release) and both sides allowed
keep-alive, for at most `keepalive` seconds idle. Timeouts: `connect_timeout` per
new connection, `total_timeout` for a whole exchange (head and body); the caller bounds the wait
for the head (base.send). Errors are HTTPError: ConnectError (no connection: DNS, refused, TLS,
timeout) or ProtocolError (not an HTTP/1.1 answer, or the connection lost mid-answer).

What it does not do: redirects, cookies, proxies, 1xx or upgrades, compression (it asks for
none; an answer in an encoding it did not ask for is a ProtocolError), HTTP/2. One client per
event loop (gateway/runtime.py holds the gateway's; a probe batch makes its own).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Mapping
from functools import lru_cache
from urllib.parse import urlsplit

import httptools

BUFFER_LIMIT = 256 * 1024  # unread body bytes at which the socket stops being read
DRAIN_SECONDS = 1.0  # how long a drained answer may take to end (Response.release)
DRAIN_BYTES = 64 * 1024  # and how much it may still send
HEAD_LIMIT = 64 * 1024  # the most a response head (status line and headers) may take
_DEFAULT_PORTS = {"http": 80, "https": 443}
_NO_BODY_STATUSES = {204, 304}

Origin = tuple[str, str, int]  # scheme, host, port


class HTTPError(Exception):
    """The exchange failed below HTTP's meaning: no answer, or no well-formed one."""


class ConnectError(HTTPError):
    """No connection: the name did not resolve, the port refused, TLS failed or it took too long."""


class ProtocolError(HTTPError):
    """The peer's bytes were not an HTTP/1.1 answer, or the connection ended in the middle of one."""


@lru_cache(maxsize=4096)  # a gateway calls a few dozen upstream URLs over and over
def _parse(url: str) -> tuple[Origin, bytes]:
    """The URL's origin and the start of its request head (request line and Host header)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError("not an http or https URL")
    try:
        port = parts.port or _DEFAULT_PORTS[scheme]
    except ValueError:
        raise ValueError("not an http or https URL") from None
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    if port != _DEFAULT_PORTS[scheme]:
        host = f"{host}:{port}"
    if any(c.isspace() or c == "\0" for c in target + host):  # "METHOD target HTTP/1.1"
        raise ValueError("a URL may not hold white space")
    return (scheme, parts.hostname, port), f"{target} HTTP/1.1\r\nHost: {host}\r\n".encode("ascii")


def _header_safe(text: str) -> str:
    """A header name or value as sent: one line of Latin-1 (a CR or LF would start a new header
    or end the head, letting what follows be read as a second request)."""
    if "\r" in text or "\n" in text or "\0" in text:
        raise ValueError("a header may not hold a line break")
    text.encode("latin-1")
    return text


class Response:
    """An answer whose head has arrived. Read the body with `chunks()` (each read's bytes as they
    come); `release()` when done with it (reading to the end releases it too)."""

    def __init__(self, connection: _Connection, deadline: float) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}  # lowercased names; repeated ones joined by ", "
        self._connection: _Connection | None = connection
        self._loop = connection.loop
        self._head: asyncio.Future[None] = self._loop.create_future()
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._waiter: asyncio.Future[None] | None = None
        self._complete = False
        self._failure: BaseException | None = None
        self._draining = False  # released with drain=True, the answer's end not in yet
        self._drained = 0
        self._timer = self._loop.call_at(deadline, self._expire)

    @property
    def content_type(self) -> str:
        """The media type, lowercased, without parameters ("" when not given)."""
        return self.headers.get("content-type", "").partition(";")[0].strip().lower()

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body, one bytes object per read; raises HTTPError (or TimeoutError past the total
        timeout) if the answer breaks off."""
        try:
            while True:
                if self._buffer:
                    data = b"".join(self._buffer) if len(self._buffer) > 1 else self._buffer[0]
                    self._buffer.clear()
                    self._buffered = 0
                    if self._connection is not None:
                        self._connection.resume()
                    yield data
                elif self._failure is not None:
                    raise self._failure
                elif self._complete:
                    return
                else:
                    self._waiter = self._loop.create_future()
                    try:
                        await self._waiter
                    finally:
                        self._waiter = None
        finally:
            self.release()

    def release(self, *, drain: bool = False) -> None:
        """Done with the answer: its connection is kept for the next request if the answer came
        in whole (read or not), else closed. Idempotent.

        `drain`: the caller has all it wants and what is left is the end of the framing (an SSE
        stream after `[DONE]`, whose last chunk may come in a later read). The connection then
        reads on, discarding, for up to DRAIN_SECONDS and DRAIN_BYTES, and is kept if the
        answer ends. Never for a caller who leaves mid-answer: closing the connection is what
        tells the upstream to stop generating."""
        if self._draining:
            return  # the drain decides
        if drain and not self._complete and self._failure is None and self._connection:
            self._draining = True
            self._buffer.clear()
            self._buffered = 0
            self._connection.resume()
            self._timer.cancel()
            self._timer = self._loop.call_later(DRAIN_SECONDS, self._expire)
            return
        self._detach()

    def _detach(self) -> None:
        self._timer.cancel()
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.finished(self, reusable=self._complete and self._failure is None)

    # What the connection reports.

    def _headers_done(self, status: int) -> None:
        self.status = status
        if not self._head.done():
            self._head.set_result(None)

    def _body(self, data: bytes) -> bool:
        """Buffered; True once the unread part has reached BUFFER_LIMIT (stop reading)."""
        if self._failure is not None:  # what a broken answer's parser still hands on
            return False
        if self._draining:
            self._drained += len(data)
            if self._drained > DRAIN_BYTES:
                self._expire()
            return False
        self._buffer.append(data)
        self._buffered += len(data)
        self._wake()
        return self._buffered >= BUFFER_LIMIT

    def _done(self) -> None:
        self._complete = True
        self._timer.cancel()
        self._wake()
        if self._draining:
            self._detach()  # the drain is over: the connection is kept

    def _fail(self, failure: BaseException) -> None:
        if self._complete or self._failure is not None:
            return
        self._failure = failure
        self._timer.cancel()
        if not self._head.done():
            self._head.set_exception(failure)
            self._head.exception()  # retrieved: the caller may have stopped waiting
        self._wake()
        if self._draining:
            self._detach()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _expire(self) -> None:
        connection = self._connection
        if connection is not None:
            self._fail(TimeoutError())
            connection.abort()


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection to an origin: at most one exchange at a time."""

    def __init__(self, client: Client, origin: Origin) -> None:
        self.client = client
        self.origin = origin
        self.loop = client.loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.response: Response | None = None
        self.head_bytes = 0  # what the reads brought before the head was complete
        self.header_bytes = 0  # the header names and values parsed
        self.until_close = False  # the body has no length: it ends when the connection does
        self.paused = False
        self.closed = False
        self.aborted = False  # closed by us: never the clean end of a body without a length
        self.keep_alive = False  # the last answer allowed another request on this connection
        self.idle_since = 0.0

    def send(self, response: Response, data: bytes) -> None:
        assert self.transport is not None
        self.response = response
        self.head_bytes = self.header_bytes = 0
        self.keep_alive = False
        self.transport.write(data)

    def finished(self, response: Response, *, reusable: bool) -> None:
        if self.response is not response:
            return
        self.response = None
        if reusable and not self.closed and self.keep_alive:
            self.resume()
            self.client.keep(self)
        else:
            self.abort()

    def resume(self) -> None:
        if self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()

    def abort(self) -> None:
        """Close now, whatever is in flight (an answer being read ends with a ProtocolError)."""
        self.closed = self.aborted = True
        self.client.forget(self)
        if self.transport is not None:
            self.transport.abort()

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        response = self.response
        if response is None:  # bytes nobody asked for: the connection cannot be trusted
            self.abort()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._broken(ProtocolError("the response asked to switch protocols"))
            return
        except httptools.HttpParserError:
            self._broken(ProtocolError("the response was not HTTP/1.1"))
            return
        if not response._head.done():  # one read is at most the transport's buffer
            self.head_bytes += len(data)
            if self.head_bytes > HEAD_LIMIT:
                self._broken(ProtocolError("the response head was too large"))

    def eof_received(self) -> bool:
        return False  # close the transport: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.client.forget(self)
        response = self.response
        if response is None:
            return
        if exc is None and not self.aborted and self.until_close and response._head.done():
            response._done()  # a body without a length ends with the connection
        else:
            response._fail(ProtocolError("the connection closed before the answer's end"))

    # httptools callbacks (no exception may escape one: the parser would wrap it). Once the
    # connection is aborted, the rest of the read it was parsing is nobody's: ignored.

    def on_message_begin(self) -> None:
        response = self.response
        if response is None or response._complete or response._head.done():
            self._broken(ProtocolError("the upstream sent an answer nobody asked for"))

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.aborted:
            return
        assert self.response is not None
        self.header_bytes += len(name) + len(value)
        if self.header_bytes > HEAD_LIMIT:  # however few reads brought them
            self._broken(ProtocolError("the response head was too large"))
            return
        headers = self.response.headers
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text

    def on_headers_complete(self) -> None:
        if self.aborted:
            return
        response = self.response
        assert response is not None
        status = self.parser.get_status_code()
        headers = response.headers
        if 100 <= status < 200:
            self._broken(ProtocolError("the response was an informational (1xx) one"))
            return
        if headers.get("content-encoding", "identity").lower() != "identity":
            self._broken(ProtocolError("the response came in an encoding we did not ask for"))
            return
        self.until_close = (
            status not in _NO_BODY_STATUSES
            and "content-length" not in headers
            and "chunked" not in headers.get("transfer-encoding", "").lower()
        )
        response._headers_done(status)

    def on_body(self, data: bytes) -> None:
        response = self.response
        if not self.aborted and response is not None and response._body(data) and not self.paused:
            self.paused = True
            assert self.transport is not None
            self.transport.pause_reading()

    def on_message_complete(self) -> None:
        if self.aborted:
            return
        self.keep_alive = self.parser.should_keep_alive()  # known only inside the callback
        if self.response is not None:
            self.response._done()

    def _broken(self, failure: HTTPError) -> None:
        if self.response is not None:
            self.response._fail(failure)
        self.abort()


class Client:
    """Pooled connections for one event loop. `async with Client(...)` closes it at the end."""

    def __init__(
        self, *, connect_timeout: float, total_timeout: float, keepalive: float = 60.0
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.connect_timeout = connect_timeout
        self.total_timeout = total_timeout
        self.keepalive = keepalive
        self.closed = False
        self._idle: dict[Origin, list[_Connection]] = {}
        self._open: set[_Connection] = set()
        self._tls: ssl.SSLContext | None = None

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def connections(self) -> int:
        """Connections open now, idle or in use."""
        return len(self._open)

    async def request(
        self, method: str, url: str, *, headers: Mapping[str, str], body: bytes | None = None
    ) -> Response:
        """Send the request; the answer once its head has arrived (any status). The body has
        `total_timeout` from now to arrive. Raises HTTPError, or ValueError for a URL or header
        that cannot be sent."""
        if self.closed:
            raise RuntimeError("the client is closed")
        origin, start = _parse(url)
        lines = [method.encode("ascii"), b" ", start]
        for name, value in headers.items():
            lines.append(f"{_header_safe(name)}: {_header_safe(value)}\r\n".encode("latin-1"))
        if body is not None:
            lines.append(b"Content-Length: %d\r\n\r\n" % len(body))
            lines.append(body)
        else:
            lines.append(b"\r\n")
        connection = self._reuse(origin) or await self._connect(origin)
        response = Response(connection, self.loop.time() + self.total_timeout)
        connection.send(response, b"".join(lines))
        try:
            await response._head
        except BaseException:  # failed, timed out or cancelled: the connection goes with it
            response.release()
            raise
        return response

    async def close(self) -> None:
        """Close every connection, in use or idle."""
        self.closed = True
        for connection in list(self._open):
            connection.abort()
        self._idle.clear()
        self._open.clear()

    # The pool

    def _reuse(self, origin: Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        stale_before = self.loop.time() - self.keepalive
        while idle:
            connection = idle.pop()
            assert connection.transport is not None
            if connection.idle_since >= stale_before and not connection.transport.is_closing():
                return connection
            connection.abort()
        return None

    async def _connect(self, origin: Origin) -> _Connection:
        scheme, host, port = origin
        tls = self._tls_context() if scheme == "https" else None
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, connection = await self.loop.create_connection(
                    lambda: _Connection(self, origin),
                    host,
                    port,
                    ssl=tls,
                    server_hostname=host if tls is not None else None,
                )
        except OSError as exc:  # also TimeoutError, ssl.SSLError and socket.gaierror
            raise ConnectError(f"could not connect ({type(exc).__name__})") from None
        if self.closed:
            connection.abort()
            raise RuntimeError("the client is closed")
        self._open.add(connection)
        return connection

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = ssl.create_default_context()
        return self._tls

    def keep(self, connection: _Connection) -> None:
        if self.closed:
            connection.abort()
            return
        connection.idle_since = self.loop.time()
        self._idle.setdefault(connection.origin, []).append(connection)

    def forget(self, connection: _Connection) -> None:
        self._open.discard(connection)
        idle = self._idle.get(connection.origin)
        if idle and connection in idle:
            idle.remove(connection)
