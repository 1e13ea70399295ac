"""How an answer leaves Daphne: its head in one write, and each body message sent at once.

Twisted hands a response to the socket only when its event loop next polls for writable sockets,
which it does after running every callback already queued. Under load that queue is long: at
16 requests in flight the last bytes of a finished answer waited 2-3 ms in Twisted's buffer
(docs/performance.md, "Optimisations"), and a stream's first token as long. Here each body
message is sent as soon as Daphne has written it, as the reactor itself would once the socket is
writable (`FileDescriptor.doWrite`). A connection that is closing or half-closed is left to the
reactor, and so is a send that fails: its writer stays registered, and the reactor's own attempt
reports the loss.

The head (status line and headers) goes to the transport as one piece; Twisted's writer hands it
four pieces per header, each type-checked and buffered on its own (a /v1 answer has about twenty).
dragonfly/daphne.py installs these classes; the edge's refusals are theirs (dragonfly/edge.py).
"""

from __future__ import annotations

from twisted.internet.abstract import FileDescriptor
from twisted.web.http_headers import Headers

from dragonfly.edge import EdgeChannel, EdgeRequest


class OutputChannel(EdgeChannel):
    def writeHeaders(self, version: bytes, code: bytes, reason: bytes, headers) -> None:
        if not isinstance(headers, Headers):
            super().writeHeaders(version, code, reason, headers)
            return
        lines = [b"%s %s %s\r\n" % (version, code, reason)]
        lines += [
            b"%s: %s\r\n" % (name, value)
            for name, values in headers.getAllRawHeaders()
            for value in values
        ]
        lines.append(b"\r\n")
        self.write(b"".join(lines))


class OutputRequest(EdgeRequest):
    def handle_reply(self, message) -> None:
        super().handle_reply(message)
        if message.get("type") == "http.response.body":
            send_now(self.transport)


def send_now(transport) -> None:
    """Send what `transport` holds now, as the reactor would once its socket is writable."""
    if not isinstance(transport, FileDescriptor) or not transport.connected:
        return
    if transport.disconnecting or getattr(transport, "_writeDisconnecting", False):
        return
    if transport.dataBuffer or transport._tempDataLen:
        transport.doWrite()
