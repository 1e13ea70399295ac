"""The edge (dragonfly/edge.py) refuses what it must before reading it, in JSON, on a real Daphne:
bodies over the cap from Content-Length or while a chunked body streams in, oversized or too many
headers, a bad Content-Length. Raw sockets, since no HTTP client sends these. Each test runs on a
process of each role: Twisted's HTTP in the default one, dragonfly/api_http.py in the `api` one."""

from __future__ import annotations

import os
import select
import signal
import socket
import time

import orjson
import pytest

from tests.e2e.conftest import Server, database_url

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

CAP = 4 * 1024 * 1024
HEAD = (
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
)


@pytest.fixture(scope="module", params=["all", "api"])
def daphne(request, django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        env = {**os.environ, "DATABASE_URL": database_url(), "DRAGONFLY_ROLE": request.param}
    server = Server(env)
    server.role = request.param
    yield server
    server.stop()


def connect(server: Server) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)
    return sock


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes, bool]:
    """Status, headers, body, and whether the server then closed the connection."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed without a response: {data!r}"
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    length = int(headers["content-length"])
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed mid-body"
        body += chunk
    closed = sock.recv(65536) == b""
    return status, headers, body, closed


def assert_error(response, status: int, error_type: str) -> dict:
    code, headers, body, closed = response
    assert code == status, body
    assert headers["content-type"] == "application/json"
    assert headers["x-df-market-request-id"].startswith("req_")
    error = orjson.loads(body)
    assert list(error) == ["error"]
    assert set(error["error"]) == {"message", "type", "code"}
    assert error["error"]["type"] == error_type
    assert error["error"]["code"] == status
    assert closed
    return error["error"]


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_it_refuses_an_announced_body_over_the_cap_before_reading_it(daphne):
    with connect(daphne) as sock:
        sock.sendall(HEAD + b"Content-Length: 209715200\r\n\r\n")  # 200 MB announced, none sent
        error = assert_error(read_response(sock), 413, "bad_request")
    assert error["message"] == f"Request body is larger than the {CAP} bytes allowed."


def test_a_413_on_v1_carries_the_addresss_rate_limit_headers_and_counts(daphne):
    """The edge refuses before any key is read: the client's address is counted, as a 401 is."""
    remaining = []
    for _ in range(2):
        with connect(daphne) as sock:
            sock.sendall(HEAD + b"Content-Length: 209715200\r\n\r\n")
            code, headers, _, closed = read_response(sock)
        assert (code, closed) == (413, True)
        assert headers["x-ratelimit-limit-requests"] == "60"
        assert headers["x-ratelimit-limit-tokens"] == "unlimited"
        assert headers["x-ratelimit-remaining-tokens"] == "unlimited"
        assert headers["x-ratelimit-reset-requests"] == headers["x-ratelimit-reset-tokens"]
        remaining.append(int(headers["x-ratelimit-remaining-requests"]))
    if remaining[0] > 0:  # a new minute between the two would start again at 59
        assert remaining[1] in (remaining[0] - 1, 59)


def test_outside_v1_a_413_has_no_rate_limit_headers(daphne):
    with connect(daphne) as sock:
        sock.sendall(
            HEAD.replace(b"/v1/chat/completions", b"/dashboard/")
            + b"Content-Length: 209715200\r\n\r\n"
        )
        code, headers, _, _ = read_response(sock)
    assert code == 413
    assert "x-ratelimit-limit-requests" not in headers


def test_it_refuses_a_chunked_body_once_it_passes_the_cap(daphne):
    stream = b"%x\r\n%s\r\n" % (1 << 20, b"x" * (1 << 20)) * 10  # ~10 MB, never finished
    sent = 0
    with connect(daphne) as sock:
        sock.sendall(HEAD + b"Transfer-Encoding: chunked\r\n\r\n")
        sock.setblocking(False)
        while sent < len(stream):
            readable, writable, _ = select.select([sock], [sock], [], 5)
            if readable:
                break
            assert writable
            try:
                sent += sock.send(stream[sent : sent + (1 << 16)])
            except (BrokenPipeError, ConnectionResetError):
                break
        sock.setblocking(True)
        sock.settimeout(10)
        error = assert_error(read_response(sock), 413, "bad_request")
    assert "4194304 bytes" in error["message"]


def test_a_200_mb_attempt_leaves_the_servers_memory_where_it_was(daphne):
    before = rss_kib(daphne.process.pid)
    payload = b"\0" * (1 << 20)
    sent = 0
    with connect(daphne) as sock:
        sock.sendall(HEAD + b"Content-Length: 209715200\r\n\r\n")
        sock.setblocking(False)
        deadline = time.monotonic() + 10
        # A client that uploads regardless until the answer arrives (or 200 MB are sent).
        while sent < 200 * (1 << 20) and time.monotonic() < deadline:
            readable, writable, _ = select.select([sock], [sock], [], 1)
            if readable:
                break
            if writable:
                try:
                    sent += sock.send(payload)
                except (BrokenPipeError, ConnectionResetError):
                    break
        sock.setblocking(True)
        sock.settimeout(10)
        assert_error(read_response(sock), 413, "bad_request")
    time.sleep(0.5)
    after = rss_kib(daphne.process.pid)
    print(f"RSS before {before} KiB, after {after} KiB, client sent {sent} bytes")
    assert after - before < 20 * 1024


def test_a_100_kb_header_is_a_json_431(daphne):
    with connect(daphne) as sock:
        sock.sendall(HEAD + b"X-Big: " + b"a" * 100_000 + b"\r\nContent-Length: 2\r\n\r\n{}")
        error = assert_error(read_response(sock), 431, "bad_request")
    assert error["message"] == "A request header is longer than the 16384 bytes allowed."


def test_headers_over_the_total_size_are_a_json_431(daphne):
    headers = b"".join(b"X-H%d: %s\r\n" % (i, b"a" * 1000) for i in range(20))  # 20 KB in all
    with connect(daphne) as sock:
        sock.sendall(HEAD + headers + b"Content-Length: 2\r\n\r\n{}")
        error = assert_error(read_response(sock), 431, "bad_request")
    assert error["message"] == "Request headers are larger than the 16384 bytes allowed."


def test_too_many_headers_are_a_json_431(daphne):
    headers = b"".join(b"X-%d: 1\r\n" % i for i in range(1000))
    with connect(daphne) as sock:
        sock.sendall(HEAD + headers + b"Content-Length: 2\r\n\r\n{}")
        error = assert_error(read_response(sock), 431, "bad_request")
    assert error["message"] == "Request has more than the 500 headers allowed."


def test_a_content_length_that_is_not_a_number_is_a_json_400(daphne):
    with connect(daphne) as sock:
        sock.sendall(HEAD + b"Content-Length: abc\r\n\r\n{}")
        error = assert_error(read_response(sock), 400, "bad_request")
    assert error["message"] == "Content-Length is not a number."


def test_a_malformed_request_line_is_a_json_400(daphne):
    with connect(daphne) as sock:
        sock.sendall(b"NONSENSE\r\n\r\n")
        error = assert_error(read_response(sock), 400, "bad_request")
    assert error["message"] == "The request is not valid HTTP/1.1."


@pytest.mark.parametrize("path", ["/ws/feed", "/ws/live/account/"])
def test_a_websocket_handshake_without_a_session_or_route_is_refused_and_the_server_serves_on(
    daphne, path
):
    """Daphne serves websockets (the live pages, dragonfly/websocket_routes.py): an upgrade with
    no signed-in session, or for a path no route serves, is refused at the handshake (a 403,
    never a 500 from Channels' router) and the process goes on serving. The `api` role serves
    none: a 404 in JSON."""
    upgrade = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: http://127.0.0.1\r\n"
        "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    ).encode()
    with connect(daphne) as sock:
        sock.sendall(upgrade)
        head = sock.recv(65536)
    assert head.startswith(b"HTTP/1.1 404 " if daphne.role == "api" else b"HTTP/1.1 403 "), head
    with connect(daphne) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")


def test_a_burst_of_new_connections_waits_in_the_accept_queue_while_the_server_is_busy(daphne):
    """Behind nginx every request is a new connection. With the process not accepting (stopped
    here, busy in production), 300 connections arriving at once all complete their handshake in
    the kernel's accept queue (dragonfly/daphne_server.py); at Twisted's default of 50 the rest
    had their SYN dropped and retried a second later."""
    os.kill(daphne.process.pid, signal.SIGSTOP)
    socks = []
    try:
        for _ in range(300):
            sock = socket.socket()
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", daphne.port))
            socks.append(sock)
        pending = set(socks)
        deadline = time.monotonic() + 0.8  # under the 1 s SYN retry of a dropped connection
        while pending and time.monotonic() < deadline:
            _, writable, _ = select.select([], list(pending), [], 0.05)
            pending -= {
                s for s in writable if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
            }
        assert not pending, f"{len(pending)} of 300 connections not established"
    finally:
        os.kill(daphne.process.pid, signal.SIGCONT)
        for sock in socks:
            sock.close()
    with connect(daphne) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")


def test_anthropic_paths_get_anthropics_shape(daphne):
    with connect(daphne) as sock:
        sock.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 209715200\r\n\r\n")
        code, headers, body, closed = read_response(sock)
    error = orjson.loads(body)
    assert code == 413 and closed
    assert error["type"] == "error"
    assert error["error"]["type"] == "request_too_large"
    assert error["request_id"] == headers["x-df-market-request-id"]


def test_a_body_under_the_cap_still_reaches_the_gateway_on_the_same_connection(daphne):
    body = orjson.dumps({"model": "x", "messages": "y" * (CAP - 1000)})
    with connect(daphne) as sock:
        for _ in range(2):
            sock.sendall(
                b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
                % (len(body), body)
            )
            data = b""
            while b"\r\n\r\n" not in data:
                data += sock.recv(65536)
            assert data.startswith(b"HTTP/1.1 401 "), data[:200]  # the gateway's answer: no key
            head, rest = data.split(b"\r\n\r\n", 1)
            length = int(
                next(
                    line.split(b":", 1)[1]
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
            )
            while len(rest) < length:
                rest += sock.recv(65536)
