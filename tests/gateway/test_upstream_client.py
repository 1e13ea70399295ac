"""gateway/upstream/client.py against real sockets: a scripted asyncio server answers each request
with what a test gives it (well-formed, broken, slow, huge or garbage), and the client must read
what is HTTP/1.1, refuse what is not with an HTTPError, reuse only connections that are safe to
reuse, and never send a header that could smuggle a second request."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.upstream import client as client_module
from gateway.upstream import openai
from gateway.upstream.client import (
    BUFFER_LIMIT,
    HEAD_LIMIT,
    Client,
    ConnectError,
    HTTPError,
    ProtocolError,
)
from tests.deploy.topology import certificate_make

Answer = Callable[[asyncio.StreamReader, asyncio.StreamWriter, bytes], Awaitable[bool]]


class Server:
    """Reads each request (head and Content-Length body) and hands it to `answer`, which writes
    what it likes and returns True to keep the connection for another request."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.connections = 0
        self.requests: list[bytes] = []

    async def __aenter__(self) -> Server:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.server.close()

    def url(self, path: str = "/v1/chat/completions") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                if not await self.answer(reader, writer, request):
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass  # the client went, or the test ended with this handler still waiting
        finally:
            writer.close()


def fixed(raw: bytes, *, keep: bool = True, stall: float = 0.0) -> Answer:
    """Answers `raw`, then waits `stall` seconds (a server gone quiet) before the next request."""

    async def answer(reader, writer, request) -> bool:
        writer.write(raw)
        await writer.drain()
        await asyncio.sleep(stall)
        return keep

    return answer


def ok(body: bytes = b'{"ok":true}', *, extra: bytes = b"") -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\n"
        + extra
        + b"Content-Length: %d\r\n\r\n" % len(body)
        + body
    )


async def read(response) -> bytes:
    return b"".join([part async for part in response.chunks()])


def client(**overrides) -> Client:
    return Client(**{"connect_timeout": 2.0, "total_timeout": 5.0, **overrides})


async def test_a_request_goes_out_whole_and_its_answer_comes_back():
    async with Server(fixed(ok())) as server, client() as upstream:
        response = await upstream.request(
            "POST",
            server.url("/v1/chat/completions?x=1"),
            headers={"Authorization": "Bearer sk-up", "Content-Type": "application/json"},
            body=b'{"model":"m"}',
        )
        assert (response.status, response.content_type) == (200, "application/json")
        assert response.headers["content-length"] == "11"
        assert await read(response) == b'{"ok":true}'
    assert server.requests == [
        b"POST /v1/chat/completions?x=1 HTTP/1.1\r\n"
        b"Host: 127.0.0.1:%d\r\n"
        b"Authorization: Bearer sk-up\r\nContent-Type: application/json\r\n"
        b"Content-Length: 13\r\n\r\n"
        b'{"model":"m"}' % server.port
    ]


async def test_a_get_sends_no_body_and_no_length():
    async with Server(fixed(ok())) as server, client() as upstream:
        response = await upstream.request("GET", server.url("/v1/models"), headers={})
        await read(response)
    assert server.requests == [
        b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % server.port
    ]


async def test_connections_are_reused_only_after_a_whole_answer():
    async with Server(fixed(ok())) as server, client() as upstream:
        for _ in range(3):
            await read(await upstream.request("GET", server.url(), headers={}))
        assert (server.connections, upstream.connections) == (1, 1)
        # an error answer released unread, but complete: the connection is still good
        server.answer = fixed(b"HTTP/1.1 429 Too Many\r\nContent-Length: 4\r\n\r\nslow")
        response = await upstream.request("GET", server.url(), headers={})
        assert response.status == 429
        await asyncio.sleep(0.05)  # its body has arrived
        response.release()
        server.answer = fixed(ok())
        await read(await upstream.request("GET", server.url(), headers={}))
        assert server.connections == 1


async def test_an_answer_released_half_read_closes_its_connection():
    async def half(reader, writer, request) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
        await writer.drain()
        await asyncio.sleep(0.3)
        return False

    async with Server(half) as server, client() as upstream:
        response = await upstream.request("GET", server.url(), headers={})
        response.release()
        assert upstream.connections == 0
        server.answer = fixed(ok())
        assert await read(await upstream.request("GET", server.url(), headers={})) == b'{"ok":true}'
        assert server.connections == 2


async def test_an_answer_nobody_asked_for_closes_the_connection_and_leaves_the_first_whole():
    two = ok(b'{"first":1}') + ok(b'{"second":2}')  # a second answer in the same write
    async with Server(fixed(two)) as server, client() as upstream:
        response = await upstream.request("GET", server.url(), headers={})
        assert await read(response) == b'{"first":1}'
        assert response.status == 200 and response.headers["content-length"] == "11"
        assert upstream.connections == 0
        assert await read(await upstream.request("GET", server.url(), headers={})) == (
            b'{"first":1}'
        )
        assert server.connections == 2


async def test_connection_close_and_http_1_0_are_not_reused():
    answers = [
        ok(extra=b"Connection: close\r\n"),
        b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi",
    ]
    for raw in answers:
        async with Server(fixed(raw, keep=False)) as server, client() as upstream:
            for _ in range(2):
                await read(await upstream.request("GET", server.url(), headers={}))
            assert server.connections == 2


async def test_a_connection_the_server_closed_while_idle_is_not_used_again():
    async with Server(fixed(ok(), keep=False)) as server, client() as upstream:
        await read(await upstream.request("GET", server.url(), headers={}))
        await asyncio.sleep(0.05)  # the server's FIN arrives
        assert upstream.connections == 0
        await read(await upstream.request("GET", server.url(), headers={}))
        assert server.connections == 2


async def test_an_idle_connection_past_the_keepalive_is_not_used_again():
    async with Server(fixed(ok())) as server, client(keepalive=0.05) as upstream:
        await read(await upstream.request("GET", server.url(), headers={}))
        await asyncio.sleep(0.1)
        await read(await upstream.request("GET", server.url(), headers={}))
        assert server.connections == 2


async def test_a_chunked_body_streams_each_part_as_it_arrives():
    gate = asyncio.Event()

    async def stream(reader, writer, request) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n")
        writer.write(b"Transfer-Encoding: chunked\r\n\r\n")
        writer.write(b"b\r\ndata: one\n\n\r\n")
        await writer.drain()
        await gate.wait()
        writer.write(b"b\r\ndata: two\n\n\r\n0\r\n\r\n")
        await writer.drain()
        return True

    async with Server(stream) as server, client() as upstream:
        response = await upstream.request("POST", server.url(), headers={}, body=b"{}")
        assert response.content_type == "text/event-stream"
        parts = response.chunks()
        assert await anext(parts) == b"data: one\n\n"  # before the rest was even written
        gate.set()
        assert [part async for part in parts] == [b"data: two\n\n"]
        await read(await upstream.request("POST", server.url(), headers={}, body=b"{}"))
        assert server.connections == 1  # the chunked answer ended cleanly: reused


async def test_a_body_without_a_length_ends_with_the_connection():
    raw = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n" + b"[1,2,3]"
    async with Server(fixed(raw, keep=False)) as server, client() as upstream:
        response = await upstream.request("GET", server.url(), headers={})
        assert await read(response) == b"[1,2,3]"
        assert upstream.connections == 0


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "body"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\n", "body"),
        (b"HTTP/1.1 200 OK\r\nContent-Le", "head"),
        (b"", "head"),
    ],
    ids=["short-body", "chunks-cut", "head-cut", "nothing"],
)
async def test_an_answer_cut_short_is_a_protocol_error(raw, where):
    async with Server(fixed(raw, keep=False)) as server, client() as upstream:
        if where == "head":
            with pytest.raises(ProtocolError):
                await upstream.request("GET", server.url(), headers={})
            return
        response = await upstream.request("GET", server.url(), headers={})
        with pytest.raises(ProtocolError):
            await read(response)
        assert upstream.connections == 0


@pytest.mark.parametrize(
    "raw",
    [
        b"SMTP ready\r\n\r\n",
        b"HTTP/1.1 abc OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 3\r\n\r\nabc",
        b"HTTP/1.1 200 OK\r\nX: " + b"y" * (HEAD_LIMIT + 10) + b"\r\n\r\n",
    ],
    ids=[
        "not-http",
        "bad-status",
        "negative-length",
        "two-lengths",
        "1xx",
        "upgrade",
        "gzip",
        "huge-head",
    ],
)
async def test_what_is_not_a_plain_http_1_1_answer_is_refused(raw):
    async with Server(fixed(raw, keep=False)) as server, client() as upstream:
        with pytest.raises(ProtocolError):
            response = await upstream.request("GET", server.url(), headers={})
            await read(response)
        assert upstream.connections == 0


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    garbage=st.one_of(
        st.binary(max_size=300),
        st.builds(
            lambda head, tail: b"HTTP/1.1 200 OK\r\n" + head + b"\r\n\r\n" + tail,
            st.binary(max_size=120),
            st.binary(max_size=120),
        ),
    )
)
def test_garbage_from_the_upstream_is_an_http_error_or_an_answer_never_a_crash(garbage):
    async def main():
        async with Server(fixed(garbage, keep=False)) as server, client(total_timeout=1.0) as up:
            try:
                response = await up.request("GET", server.url(), headers={})
                body = await read(response)
            except (HTTPError, TimeoutError):
                return
            assert 200 <= response.status < 600 and isinstance(body, bytes)

    asyncio.run(main())


async def test_a_stalled_answer_fails_at_the_total_timeout_and_closes():
    stall = fixed(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial", keep=False, stall=5)
    async with Server(stall) as server, client(total_timeout=0.2) as upstream:
        response = await upstream.request("GET", server.url(), headers={})
        parts = response.chunks()
        assert await anext(parts) == b"partial"
        started = asyncio.get_running_loop().time()
        with pytest.raises(TimeoutError):
            await anext(parts)
        assert asyncio.get_running_loop().time() - started < 1.0
        assert upstream.connections == 0


async def test_a_caller_that_stops_waiting_for_the_head_closes_the_connection():
    async with Server(fixed(b"", keep=False, stall=5)) as server, client() as upstream:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.1):
                await upstream.request("GET", server.url(), headers={})
        assert upstream.connections == 0


async def test_an_unread_body_stops_the_socket_being_read_past_the_buffer_limit():
    size = 64 * BUFFER_LIMIT  # 16 MiB: more than the kernel's socket buffers hold

    async def flood(reader, writer, request) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
        writer.write(b"z" * size)
        await writer.drain()
        return True

    async with Server(flood) as server, client() as upstream:
        response = await upstream.request("GET", server.url(), headers={})
        await asyncio.sleep(0.3)
        assert response._buffered < 2 * BUFFER_LIMIT  # what waits unread in this process
        assert len(await read(response)) == size
        await read(await upstream.request("GET", server.url(), headers={}))
        assert server.connections == 1  # reading resumed, and the connection is whole


async def test_refused_and_unresolvable_hosts_are_connect_errors():
    async with Server(fixed(ok())) as server:
        port = server.port
    async with client() as upstream:
        with pytest.raises(ConnectError):
            await upstream.request("GET", f"http://127.0.0.1:{port}/", headers={})
        with pytest.raises(ConnectError):
            await upstream.request("GET", "http://no-such-host.invalid/", headers={})


@pytest.mark.parametrize(
    ("url", "headers"),
    [
        ("ftp://example.com/", {}),
        ("http:///path", {}),
        ("http://example.com:99999/", {}),
        ("http://example.com/a b", {}),
        ("http://example.com/", {"Authorization": "Bearer k\r\nX-Injected: 1"}),
        ("http://example.com/", {"Authorization": "Bearer k\n\nGET /admin HTTP/1.1"}),
        ("http://example.com/", {"X\r\nY": "1"}),
        ("http://example.com/", {"Authorization": "Bearer \u2603"}),
    ],
)
async def test_a_url_or_header_that_could_split_the_request_is_never_sent(url, headers):
    async with client() as upstream:
        with pytest.raises(ValueError):
            await upstream.request("GET", url, headers=headers)
        assert upstream.connections == 0


async def test_https_verifies_the_certificate_and_talks_tls(tmp_path):
    cert = certificate_make(tmp_path, "localhost")  # self-signed
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    served.load_cert_chain(cert, tmp_path / "privkey.pem")
    server = await asyncio.start_server(
        lambda r, w: Server(fixed(ok()))._serve(r, w), "127.0.0.1", 0, ssl=served
    )
    url = f"https://localhost:{server.sockets[0].getsockname()[1]}/v1/models"
    try:
        async with client() as upstream:
            with pytest.raises(ConnectError):  # not signed by a CA this machine trusts
                await upstream.request("GET", url, headers={})
        async with client() as upstream:
            trusting = ssl.create_default_context(cafile=str(cert))
            upstream._tls = trusting  # as if the test CA were in the system store
            response = await upstream.request("GET", url, headers={})
            assert await read(response) == b'{"ok":true}'
    finally:
        server.close()


async def test_close_closes_connections_in_use_and_idle():
    slow = fixed(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345", keep=False, stall=5)
    async with Server(fixed(ok())) as idle_server, Server(slow) as busy_server:
        upstream = client()
        await read(await upstream.request("GET", idle_server.url(), headers={}))
        response = await upstream.request("GET", busy_server.url(), headers={})
        assert upstream.connections == 2
        await upstream.close()
        assert upstream.closed and upstream.connections == 0
        with pytest.raises(HTTPError):
            await read(response)
        with pytest.raises(RuntimeError):
            await upstream.request("GET", idle_server.url(), headers={})


def _sse_then(tail: Callable[[asyncio.StreamWriter], Awaitable[None]]) -> Answer:
    """A chunked SSE answer whose `[DONE]` event comes in one write; `tail` writes the rest."""

    async def answer(reader, writer, request) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n")
        writer.write(b"Transfer-Encoding: chunked\r\n\r\n")
        event = b"data: 1\n\ndata: [DONE]\n\n"
        writer.write(b"%x\r\n%s\r\n" % (len(event), event))
        await writer.drain()
        await tail(writer)
        return True

    return answer


async def _stream(upstream: Client, url: str) -> list[bytes]:
    response = await upstream.request("POST", url, headers={}, body=b"{}")
    return [payload async for batch in openai.events(response) for payload in batch]


async def test_a_stream_whose_end_comes_after_done_keeps_its_connection():
    async def late_end(writer):
        await asyncio.sleep(0.05)
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    async with Server(_sse_then(late_end)) as server, client() as upstream:
        assert await _stream(upstream, server.url()) == [b"1", openai.DONE]
        assert upstream.connections == 1  # draining the last chunk
        await asyncio.sleep(0.1)
        assert await _stream(upstream, server.url()) == [b"1", openai.DONE]
        assert server.connections == 1


async def test_a_drained_stream_that_never_ends_is_closed_after_the_drain_time(monkeypatch):
    monkeypatch.setattr(client_module, "DRAIN_SECONDS", 0.1)

    async def never(writer):
        await asyncio.sleep(5)

    async with Server(_sse_then(never)) as server, client() as upstream:
        assert await _stream(upstream, server.url()) == [b"1", openai.DONE]
        assert upstream.connections == 1
        await asyncio.sleep(0.2)
        assert upstream.connections == 0


async def test_a_drained_stream_that_sends_on_is_closed_past_the_drain_bytes():
    async def flood(writer):
        await asyncio.sleep(0.05)  # the client is draining by now
        junk = b"data: x\n\n" * 1000
        for _ in range(200):
            writer.write(b"%x\r\n%s\r\n" % (len(junk), junk))
            await writer.drain()

    async with Server(_sse_then(flood)) as server, client() as upstream:
        await _stream(upstream, server.url())
        await asyncio.sleep(0.2)
        assert upstream.connections == 0


async def test_a_caller_leaving_mid_stream_closes_the_connection_at_once():
    half = fixed(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n9\r\ndata: 1\n\n\r\n",
        keep=False,
        stall=5,
    )
    async with Server(half) as server, client() as upstream:
        response = await upstream.request("POST", server.url(), headers={}, body=b"{}")
        events = openai.events(response)
        assert await anext(events) == [b"1"]
        await events.aclose()  # the buyer left: the upstream must stop generating
        assert upstream.connections == 0
