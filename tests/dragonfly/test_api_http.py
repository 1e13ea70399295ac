"""The `api` role's HTTP/1.1 (dragonfly/api_http.py): how an answer is framed, which endpoints it
listens on, and, on a real process of the role over raw sockets, keep-alive, pipelining, HEAD,
HTTP/1.0, `Expect: 100-continue` and the idle timeout. The edge's refusals are
tests/dragonfly/test_edge_limits.py's, run on this role too; the SDKs' traffic is
tests/e2e/test_e2e_api_role.py's."""

from __future__ import annotations

import asyncio
import os
import random
import socket
import time

import orjson
import pytest

from dragonfly.api_http import parse_endpoint, response_head
from tests.e2e.conftest import Server, database_url

HEADERS = [(b"content-type", b"application/json")]


def _head(version=b"1.1", status=200, headers=HEADERS, **flags):
    options = {"server_name": "daphne", "keep_alive": True, "head_only": False, **flags}
    return response_head(version, status, headers, **options)


def test_an_answer_without_a_length_is_chunked_on_http_1_1_only():
    head, chunked = _head()
    assert chunked
    assert head == (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nserver: daphne\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    assert _head(headers=[*HEADERS, (b"Content-Length", b"2")])[1] is False
    assert _head(version=b"1.0")[1] is False
    assert _head(head_only=True)[1] is False
    assert _head(status=204)[1] is False and _head(status=304)[1] is False


def test_the_head_names_the_server_once_and_says_when_it_closes():
    head, _ = _head(headers=[(b"Server", b"dragonfly")], keep_alive=False)
    assert b"server: daphne" not in head and b"Server: dragonfly\r\n" in head
    assert head.endswith(b"Connection: close\r\n\r\n")
    assert _head(status=599)[0].startswith(b"HTTP/1.1 599 \r\n")  # a code HTTP does not name


def test_a_line_break_in_a_header_cannot_start_another_header():
    head, _ = _head(headers=[(b"x-a", b"1\r\nSet-Cookie: stolen=1"), (b"x-b", b"2\n3\r4")])
    assert b"\r\nSet-Cookie" not in head
    assert b"x-a: 1 Set-Cookie: stolen=1\r\n" in head and b"x-b: 2 3 4\r\n" in head
    assert head.count(b"\r\n") == 6  # the status line, four headers, the blank line


@pytest.mark.parametrize(
    ("description", "expected"),
    [
        ("tcp:port=8000:interface=127.0.0.1",
         {"kind": "tcp", "host": "127.0.0.1", "port": 8000, "backlog": 2048}),
        ("tcp:8001", {"kind": "tcp", "host": "0.0.0.0", "port": 8001, "backlog": 2048}),
        (r"tcp6:port=8002:interface=\:\:1:backlog=16",
         {"kind": "tcp", "host": "::1", "port": 8002, "backlog": 16}),
        ("unix:/run/df.sock", {"kind": "unix", "path": "/run/df.sock", "backlog": 2048,
                               "mode": None}),
        ("unix:address=/run/df.sock:mode=660",
         {"kind": "unix", "path": "/run/df.sock", "backlog": 2048, "mode": "660"}),
        ("fd:fileno=3", {"kind": "fd", "fileno": 3}),
    ],
)  # fmt: skip
def test_it_listens_on_the_endpoints_daphnes_command_line_makes(description, expected):
    assert parse_endpoint(description, 2048) == expected


def test_an_endpoint_it_cannot_serve_is_refused_by_name():
    with pytest.raises(ValueError, match=r"tcp:, tcp6:, unix: and fd:.*ssl:"):
        parse_endpoint("ssl:443:privateKey=key.pem", 2048)


@pytest.fixture(scope="module")
def api(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        env = {
            **os.environ,
            "DATABASE_URL": database_url(),
            "DRAGONFLY_ROLE": "api",
            "DRAGONFLY_IDLE_CONNECTION_SECONDS": "1",
        }
    server = Server(env)
    yield server
    server.stop()


def _connect(server: Server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


class Reader:
    """Answers read off one connection, framed by Content-Length or chunks."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.data = b""

    def _more(self) -> bool:
        chunk = self.sock.recv(65536)
        self.data += chunk
        return bool(chunk)

    def _until(self, mark: bytes) -> bytes:
        while mark not in self.data:
            assert self._more(), f"closed before {mark!r}: {self.data[:300]!r}"
        part, self.data = self.data.split(mark, 1)
        return part

    def _take(self, count: int) -> bytes:
        while len(self.data) < count:
            assert self._more(), "closed mid-body"
        part, self.data = self.data[:count], self.data[count:]
        return part

    def answer(self, *, head_only: bool = False) -> tuple[bytes, dict[bytes, bytes], bytes]:
        status, *lines = self._until(b"\r\n\r\n").split(b"\r\n")
        headers = {k.strip().lower(): v.strip() for k, v in (ln.split(b":", 1) for ln in lines)}
        if head_only:
            return status, headers, b""
        if headers.get(b"transfer-encoding") == b"chunked":
            body = b""
            while size := int(self._until(b"\r\n"), 16):
                body += self._take(size)
                self._take(2)
            self._take(2)
            return status, headers, body
        return status, headers, self._take(int(headers.get(b"content-length", b"0")))

    def closed(self) -> bool:
        return not self.data and not self._more()


GET = b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_pipelined_requests_are_answered_in_order_on_one_connection(api):
    with _connect(api) as sock:
        sock.sendall(GET % b"/healthz" + GET % b"/v1/models" + GET % b"/healthz")
        reader = Reader(sock)
        first, second, third = reader.answer(), reader.answer(), reader.answer()
    assert first[0] == b"HTTP/1.1 200 OK" and first[2] == b"ok"
    assert second[0] == b"HTTP/1.1 200 OK" and orjson.loads(second[2])["object"] == "list"
    assert third[2] == b"ok"


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_a_head_request_gets_no_body_and_the_connection_serves_on(api):
    with _connect(api) as sock:
        sock.sendall(b"HEAD /v1/models HTTP/1.1\r\nHost: x\r\n\r\n" + GET % b"/healthz")
        reader = Reader(sock)
        status, headers, _ = reader.answer(head_only=True)
        assert status.startswith(b"HTTP/1.1 ")
        assert b"transfer-encoding" not in headers
        assert reader.answer()[2] == b"ok"  # the next answer starts right after the head


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_http_1_0_is_answered_in_kind_and_closed(api):
    with _connect(api) as sock:
        sock.sendall(b"GET /v1/models HTTP/1.0\r\n\r\n")
        reader = Reader(sock)
        status, headers, body = reader.answer()
        assert status == b"HTTP/1.0 200 OK"
        assert orjson.loads(body)["object"] == "list"
        assert headers[b"connection"] == b"close"
        assert reader.closed()


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_connection_close_is_honoured(api):
    with _connect(api) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        reader = Reader(sock)
        assert reader.answer()[2] == b"ok"
        assert reader.closed()


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_expect_100_continue_is_told_to_go_on_before_the_body_is_sent(api):
    body = b'{"model": "deepseek/deepseek-chat", "messages": []}'
    with _connect(api) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(body)
        )
        reader = Reader(sock)
        assert reader._until(b"\r\n\r\n") == b"HTTP/1.1 100 Continue"
        sock.sendall(body)
        status, _, answer = reader.answer()
    assert status == b"HTTP/1.1 401 Unauthorized"  # the gateway's own answer: no key
    assert orjson.loads(answer)["error"]["code"] == 401


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_an_idle_connection_is_closed_and_a_busy_one_is_not(api):
    with _connect(api) as sock:
        reader = Reader(sock)
        for _ in range(3):  # 1.5 s of use in all, each request within the second
            time.sleep(0.5)
            sock.sendall(GET % b"/healthz")
            assert reader.answer()[2] == b"ok"
        started = time.monotonic()
        assert reader.closed()
        assert 0.9 < time.monotonic() - started < 3.5


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_garbage_gets_a_400_or_a_close_and_the_process_serves_on(api):
    """Random bytes, and a valid head followed by random bytes, 100 connections in all: each
    answered with the contract's 400 or closed, never a 500 or a hang."""
    rng = random.Random(20261206)
    for attempt in range(100):
        junk = rng.randbytes(rng.randrange(1, 3000))
        payload = junk if attempt % 2 else GET % b"/healthz" + junk
        with _connect(api) as sock:
            sock.settimeout(5)
            sock.sendall(payload)
            reader = Reader(sock)
            if attempt % 2 == 0:
                assert reader.answer()[2] == b"ok"
            try:
                status, headers, _ = reader.answer()
            except (AssertionError, ConnectionResetError):
                continue  # closed without a word: the bytes never made a request line
            assert status.startswith((b"HTTP/1.1 400 ", b"HTTP/1.1 414 ", b"HTTP/1.1 431 ")), status
            assert headers[b"content-type"] == b"application/json"
    with _connect(api) as sock:
        sock.sendall(GET % b"/healthz")
        assert Reader(sock).answer()[2] == b"ok"


async def _echo_client(scope, receive, send):
    """An application that answers with the client address the server gave it."""
    await receive()
    body = orjson.dumps(scope["client"])
    length = [(b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": length})
    await send({"type": "http.response.body", "body": body})


async def _proxied(head: bytes) -> tuple[bytes, bytes]:
    """`head` sent to a real ApiServer's connection trusting X-Forwarded-For, in this process."""
    from dragonfly.api_http import Connection
    from dragonfly.daphne_server import ApiServer

    server = ApiServer(
        application=_echo_client,
        endpoints=["tcp:0"],
        proxy_forwarded_address_header="X-Forwarded-For",
        proxy_forwarded_port_header="X-Forwarded-Port",
    )
    server.connections = {}  # what Server.run sets up before it listens
    listener = await asyncio.get_running_loop().create_server(
        lambda: Connection(server), "127.0.0.1", 0
    )
    async with listener:
        reader, writer = await asyncio.open_connection(*listener.sockets[0].getsockname()[:2])
        writer.write(
            b"GET /v1/models HTTP/1.1\r\nHost: x\r\n" + head + b"Connection: close\r\n\r\n"
        )
        answer = await asyncio.wait_for(reader.read(), 10)
        writer.close()
    status, _, rest = answer.partition(b"\r\n")
    return status, rest.split(b"\r\n\r\n", 1)[1]


async def test_the_proxys_address_is_the_clients_and_garbage_in_it_is_a_400():
    status, body = await _proxied(b"X-Forwarded-For: 203.0.113.9, 10.0.0.1\r\n")
    assert (status, orjson.loads(body)) == (b"HTTP/1.1 200 OK", ["203.0.113.9", 0])
    status, body = await _proxied(b"X-Forwarded-For: \xff\xfe\r\n")
    assert status == b"HTTP/1.1 400 Bad Request"
    assert orjson.loads(body)["error"]["message"] == (
        "The request's X-Forwarded-* headers are not valid."
    )
    status, body = await _proxied(b"X-Forwarded-For: 203.0.113.9\r\nX-Forwarded-Port: x\r\n")
    assert orjson.loads(body) == ["203.0.113.9", 0]  # a port that is not a number: ignored
