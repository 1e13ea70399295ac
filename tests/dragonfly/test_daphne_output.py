"""An answer leaves Daphne at once (dragonfly/daphne_output.py): its head in one write, each body
message sent when written, except on a connection that is closing or whose send failed."""

from twisted.internet import main
from twisted.internet.abstract import FileDescriptor
from twisted.internet.testing import StringTransport
from twisted.web import http
from twisted.web.http_headers import Headers

from dragonfly.daphne_output import OutputChannel, send_now


class Socket(FileDescriptor):
    """Twisted's buffered writer over a socket that takes `accept` bytes a send (or fails)."""

    def __init__(self, accept: int | None = None, fail: bool = False) -> None:
        super().__init__(reactor=None)
        self.connected = 1
        self.sent: list[bytes] = []
        self.writing = False
        self.accept, self.fail = accept, fail

    def writeSomeData(self, data):
        if self.fail:
            return main.CONNECTION_LOST
        taken = bytes(data[: self.accept or len(data)])
        self.sent.append(taken)
        return len(taken)

    def startWriting(self) -> None:
        self.writing = True

    def stopWriting(self) -> None:
        self.writing = False


def test_what_is_buffered_is_sent_now_and_the_writer_let_go():
    socket = Socket()
    socket.write(b"HTTP/1.1 200 OK\r\n\r\n")
    socket.write(b"{}")
    assert socket.writing and socket.sent == []  # Twisted waits for the loop's next poll
    send_now(socket)
    assert socket.sent == [b"HTTP/1.1 200 OK\r\n\r\n{}"]
    assert not socket.writing


def test_a_partial_send_leaves_the_rest_to_the_reactor():
    socket = Socket(accept=4)
    socket.write(b"abcdefgh")
    send_now(socket)
    assert socket.sent == [b"abcd"]
    assert socket.writing  # still registered: the reactor sends "efgh" when it can


def test_nothing_buffered_sends_nothing():
    socket = Socket()
    send_now(socket)
    assert socket.sent == []


def test_a_failed_send_is_left_for_the_reactor_to_report():
    socket = Socket(fail=True)
    socket.write(b"abc")
    send_now(socket)
    assert socket.writing  # the reactor's own doWrite fails the same way and drops the connection
    assert socket.dataBuffer == b"abc"  # nothing lost


def test_a_closing_or_half_closed_connection_is_left_to_the_reactor():
    for attribute in ("disconnecting", "_writeDisconnecting"):
        socket = Socket()
        socket.write(b"abc")
        setattr(socket, attribute, True)
        send_now(socket)
        assert socket.sent == []
        assert socket.writing
    gone = Socket()
    gone.write(b"abc")
    gone.connected = 0
    send_now(gone)
    assert gone.sent == []


def test_a_transport_that_is_not_a_socket_writer_is_left_alone():
    transport = StringTransport()
    transport.write(b"abc")
    send_now(transport)
    assert transport.value() == b"abc"


def test_the_head_is_twisteds_own_bytes_in_one_write():
    class Transport(StringTransport):
        calls = 0

        def write(self, data: bytes) -> None:
            self.calls += 1
            super().write(data)

    headers = Headers()
    headers.addRawHeader(b"content-type", b"application/json")
    headers.addRawHeader(b"set-cookie", b"a=1")
    headers.addRawHeader(b"set-cookie", b"b=2")
    headers.addRawHeader(b"x-df-upstream-model", b"m\r\nInjected: 1")  # sanitised on the way in
    heads = []
    for channel in (http.HTTPChannel(), OutputChannel()):
        transport = Transport()
        channel.makeConnection(transport)
        transport.clear()
        transport.calls = 0
        channel.writeHeaders(b"HTTP/1.1", b"200", b"OK", headers)
        heads.append((transport.value(), transport.calls))
    (twisted_head, _), (edge_head, edge_writes) = heads
    assert edge_head == twisted_head
    assert edge_writes == 1
    assert edge_head.endswith(b"X-Df-Upstream-Model: m Injected: 1\r\n\r\n")
