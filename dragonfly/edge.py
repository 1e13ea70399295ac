"""What Daphne refuses before the application sees it: oversized bodies, headers and malformed HTTP.

Daphne hands a request to the application only once Twisted has read its whole body (into a
temporary file, then every byte into the application's queue), so the gateway's body cap
(`DRAGONFLY_MAX_BODY_BYTES`, gateway/request.py) used to apply after a 200 MB upload was already
in memory. Here the cap applies while Twisted parses: an announced Content-Length over it is
refused as the headers end (`Request.gotLength`), before one body byte is read, and a chunked body
as soon as its bytes pass it (`Request.handleContentChunk`). Twisted's own refusals (a header
line over 16 KiB closed the connection without a word; too many headers, a bad Content-Length or
a malformed request line got a bare, body-less 400) become JSON in the contract's error shape
(gateway/errors.py; Anthropic's on /v1/messages*), with an X-DF-Market-Request-Id header.

After a refusal the connection is half-closed: the answer is sent, then whatever the client is
still sending is read and dropped (never kept) for up to LINGER_SECONDS, so a client busy
uploading reads the answer instead of a reset; then the connection closes.

The limits, the refusals' words and the answer itself (`refusal`) are written here once:
dragonfly/api_http.py, the `api` role's HTTP (llhttp, not Twisted), applies the same ones.

These hooks are Twisted's `HTTPChannel` internals (`lineLengthExceeded`, `headerReceived`,
`_maybeChooseTransferDecoder`, `_respondToBadRequestAndDisconnect`) at requirements.lock's pin;
tests/dragonfly/test_edge_limits.py drives a real Daphne through each. dragonfly/daphne.py installs
the channel and request classes.
"""

from __future__ import annotations

import asyncio
import logging
from http import HTTPStatus
from io import BytesIO

from daphne import http_protocol
from daphne.utils import parse_x_forwarded_for
from django.conf import settings
from twisted.internet.base import DelayedCall
from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure
from twisted.web import http

logger = logging.getLogger("dragonfly.edge")

LINGER_SECONDS = 2.0


# What the edge allows, Twisted's own limits made explicit; dragonfly/api_http.py applies them too.
MAX_LINE_BYTES = 16384  # the request line, and each header line
MAX_HEADER_BYTES = 16384  # the request line and every header together
MAX_HEADERS = 500

REQUEST_LINE_TOO_LONG = (414, f"Request line is longer than the {MAX_LINE_BYTES} bytes allowed.")
HEADER_TOO_LONG = (431, f"A request header is longer than the {MAX_LINE_BYTES} bytes allowed.")
HEADERS_TOO_LARGE = (431, f"Request headers are larger than the {MAX_HEADER_BYTES} bytes allowed.")
TOO_MANY_HEADERS = (431, f"Request has more than the {MAX_HEADERS} headers allowed.")
LENGTH_NOT_A_NUMBER = (400, "Content-Length is not a number.")
NOT_HTTP = (400, "The request is not valid HTTP/1.1.")
NO_WEBSOCKET = (404, "No websocket endpoint is served here.")


def body_too_large() -> tuple[int, str]:
    return (
        413,
        f"Request body is larger than the {settings.DRAGONFLY_MAX_BODY_BYTES} bytes allowed.",
    )


def refusal_body(path: bytes | None, status: int, message: str, request_id: str) -> bytes:
    """The gateway's error body for `status`; Anthropic's shape on /v1/messages*."""
    # Imported here: this module loads before Daphne has set Django up.
    from gateway.anthropic.errors import anthropic_error_body
    from gateway.errors import error_body

    if path is not None and path.split(b"?", 1)[0].rstrip(b"/").startswith(b"/v1/messages"):
        return anthropic_error_body(status, message, request_id=request_id)
    return error_body(status, message)


def refusal(
    path: bytes | None, status: int, message: str, extra: list[tuple[bytes, bytes]] | None
) -> bytes:
    """The whole answer to a refused request (it closes the connection), logged."""
    from gateway import process

    request_id = process.request_id()
    body = refusal_body(path, status, message, request_id)
    lines = b"".join(b"%s: %s\r\n" % (name, value) for name, value in extra or ())
    head = (
        b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
        b"X-DF-Market-Request-Id: %s\r\n%sConnection: close\r\n\r\n"
    ) % (status, reason(status), len(body), request_id.encode(), lines)
    logger.info("refused at the edge: %d %s (%s)", status, message, request_id)
    return head + body


def reason(status: int) -> bytes:
    """The status line's reason phrase (empty for a code HTTP does not name)."""
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


def address_headers(address: str) -> asyncio.Future:
    """The rate-limit headers of a refusal without a valid key, to come: counted as one of the
    address's failures (gateway/client_limits.py, as a 401 or a 404 is), never refused for it;
    None if they could not be counted."""
    from gateway import client_limits, limits

    async def count() -> list[tuple[bytes, bytes]] | None:
        try:
            return limits.headers(await client_limits.count(address, refuse=False))
        except Exception as exc:  # the refusal goes out without them
            logger.warning("rate-limit headers of an edge refusal failed: %r", exc)
            return None

    return asyncio.ensure_future(count())


def counted(done: asyncio.Future) -> list[tuple[bytes, bytes]] | None:
    """What `address_headers` came to; None if it was cancelled (the process stopping)."""
    return None if done.cancelled() else done.result()


class EdgeChannel(http.HTTPChannel):
    """Twisted's HTTP/1.1 channel answering its refusals in JSON and lingering before it closes."""

    MAX_LENGTH = MAX_LINE_BYTES
    totalHeadersSize = MAX_HEADER_BYTES
    maxHeaders = MAX_HEADERS
    refused = False
    _gone = False
    _linger: DelayedCall | None = None

    def refuse(self, status: int, message: str, *, address: str | None = None) -> None:
        """Answer `status` and stop parsing. With the client's `address` (a body over the cap on
        a /v1 path, whose headers are all in), the answer waits for the address's count of
        requests without a valid key, to carry the rate-limit headers like every /v1 answer."""
        if self.refused:
            return
        self.refused = True
        self.clearLineBuffer()  # nothing more of this connection is parsed
        path = getattr(self, "_path", None) or b""
        if address is not None and path.startswith(b"/v1/"):
            counting = address_headers(address)
            counting.add_done_callback(lambda done: self._answer(status, message, counted(done)))
            return
        self._answer(status, message, None)

    def _answer(self, status: int, message: str, extra: list[tuple[bytes, bytes]] | None) -> None:
        if self._gone:
            return
        self.write(refusal(getattr(self, "_path", None), status, message, extra))
        lose_write = getattr(self.transport, "loseWriteConnection", None)
        if lose_write is None:  # no half-close (TLS): close once the answer is written
            self.loseConnection()
            return
        lose_write()
        self._linger = self.callLater(LINGER_SECONDS, self._stop_lingering)  # the factory's reactor

    def _stop_lingering(self) -> None:
        self._linger = None
        self.loseConnection()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._gone = True
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        super().connectionLost(reason)

    def dataReceived(self, data: bytes) -> None:
        if self.refused:
            return  # lingering: read and dropped
        super().dataReceived(data)

    def lineReceived(self, line: bytes) -> None:
        if self.refused:
            return
        if self._receivedHeaderSize + len(line) > self.totalHeadersSize:
            self.refuse(*HEADERS_TOO_LARGE)
            return
        super().lineReceived(line)

    def lineLengthExceeded(self, line: bytes) -> None:
        if getattr(self, "_path", None) is None:
            self.refuse(*REQUEST_LINE_TOO_LONG)
        else:
            self.refuse(*HEADER_TOO_LONG)

    def headerReceived(self, line: bytes) -> bool:
        if self.refused:
            return False
        if self._receivedHeaderCount >= self.maxHeaders:
            self.refuse(*TOO_MANY_HEADERS)
            return False
        return super().headerReceived(line)

    def _maybeChooseTransferDecoder(self, header: bytes, data: bytes) -> bool:
        if header == b"Content-Length" and not data.isdigit():
            self.length = None
            self.refuse(*LENGTH_NOT_A_NUMBER)
            return False
        return super()._maybeChooseTransferDecoder(header, data)

    def _respondToBadRequestAndDisconnect(self) -> None:
        self.refuse(*NOT_HTTP)

    def rawDataReceived(self, data: bytes) -> None:
        if not self.refused:
            super().rawDataReceived(data)

    def allContentReceived(self) -> None:
        if not self.refused:
            super().allContentReceived()

    def _send100Continue(self) -> None:
        if not self.refused:
            super()._send100Continue()


class EdgeRequest(http_protocol.WebRequest):
    """Daphne's request, refusing a body over DRAGONFLY_MAX_BODY_BYTES before it is read."""

    _body_bytes = 0

    def _too_large(self) -> bool:
        refuse = getattr(self.channel, "refuse", None)  # an EdgeChannel (HTTP/2 streams are not)
        if refuse is None:
            return False
        refuse(*body_too_large(), address=self._address())
        return True

    def _address(self) -> str:
        """The client's address as the gateway sees it (scope["client"]: X-Forwarded-For when
        Daphne runs with proxy headers), by the gateway's one rule (client_limits.address)."""
        from gateway import client_limits

        peer = self.getClientAddress()
        client = [str(getattr(peer, "host", "")), getattr(peer, "port", 0)]
        server = getattr(self, "server", None)  # Daphne's server (set by WebRequest.__init__)
        if server is not None and server.proxy_forwarded_address_header:
            client, _ = parse_x_forwarded_for(
                self.requestHeaders,
                server.proxy_forwarded_address_header,
                server.proxy_forwarded_port_header,
                server.proxy_forwarded_proto_header,
                client,
            )
        return client_limits.address({"client": client})

    def gotLength(self, length: int | None) -> None:
        if length is not None and length > settings.DRAGONFLY_MAX_BODY_BYTES and self._too_large():
            self.content = BytesIO()  # stays empty: nothing more is read into it
            return
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        if getattr(self.channel, "refused", False):
            return
        self._body_bytes += len(data)
        if self._body_bytes > settings.DRAGONFLY_MAX_BODY_BYTES and self._too_large():
            return
        super().handleContentChunk(data)
