"""Daphne's server forgets a request once its response has ended and its application returned
(dragonfly/daphne_server.py), and leaves everything else to Daphne's once-a-second sweep; it
listens with a deep accept queue."""

import asyncio
import logging

import pytest

from dragonfly.daphne_server import LISTEN_BACKLOG, Server, with_backlog


class Request:
    """What the server asks of a protocol: hashable, and answering an application's failure."""

    def __init__(self) -> None:
        self.errors: list[BaseException] = []

    def handle_exception(self, exception: BaseException) -> None:
        self.errors.append(exception)


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setattr("daphne.server.reactor.callLater", lambda *args: None)  # no next sweep
    daphne = Server(application=None, endpoints=["tcp:port=0"])
    daphne.connections = {}  # what Server.run() starts with
    return daphne


def serve(server, app) -> tuple[Request, asyncio.Queue]:
    server.application = app
    request = Request()
    server.protocol_connected(request)
    return request, server.create_application(request, {"type": "http"})


async def turns(n: int = 3) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def test_a_request_is_forgotten_when_its_application_returns_after_the_response(server):
    async def app(scope, receive, send):
        await receive()

    request, queue = serve(server, app)
    server.protocol_disconnected(request)  # the response ended (WebRequest.finish)
    assert request in server.connections  # its application is still running
    queue.put_nowait({"type": "http.request"})
    await turns()
    assert server.connections == {}


async def test_a_request_is_forgotten_when_its_response_ends_after_the_application_returned(
    server,
):
    async def app(scope, receive, send):
        return None

    request, _ = serve(server, app)
    await turns()
    assert request in server.connections  # the connection is still open
    server.protocol_disconnected(request)
    assert server.connections == {}
    server.protocol_disconnected(request)  # a second report (connectionLost after finish)
    assert server.connections == {}


async def test_a_request_still_answering_is_kept(server):
    async def app(scope, receive, send):
        await asyncio.sleep(3600)

    request, _ = serve(server, app)
    await turns()
    assert request in server.connections
    server.connections[request]["application_instance"].cancel()
    await turns()
    assert request in server.connections  # never disconnected: the sweep's timeout covers it
    server.protocol_disconnected(request)
    assert server.connections == {}  # a cancelled application has nothing to report


async def test_an_application_that_raised_is_left_to_the_sweep_which_logs_it(server, caplog):
    async def app(scope, receive, send):
        raise RuntimeError("boom")

    request, _ = serve(server, app)
    server.protocol_disconnected(request)
    await turns()
    assert request in server.connections
    with caplog.at_level(logging.ERROR, logger="daphne.server"):
        server.application_checker()
    assert server.connections == {}
    assert "Exception inside application: boom" in caplog.text
    assert request.errors == []  # its client had gone: nothing to answer


async def test_an_application_that_raised_before_answering_gets_its_500_from_the_sweep(server):
    async def app(scope, receive, send):
        raise RuntimeError("boom")

    request, _ = serve(server, app)
    await turns()
    server.application_checker()
    assert [str(e) for e in request.errors] == ["boom"]
    server.protocol_disconnected(request)  # the 500 was sent
    assert server.connections == {}


@pytest.mark.parametrize(
    ("description", "listened"),
    [
        (
            "tcp:port=8000:interface=127.0.0.1",
            f"tcp:port=8000:interface=127.0.0.1:backlog={LISTEN_BACKLOG}",
        ),
        ("unix:/run/df.sock", f"unix:/run/df.sock:backlog={LISTEN_BACKLOG}"),
        ("tcp:8000:backlog=10", "tcp:8000:backlog=10"),  # the operator's own is kept
        ("fd:fileno=3", "fd:fileno=3"),  # a socket already listening
    ],
)
def test_every_listening_endpoint_asks_for_a_deep_accept_queue(description, listened):
    assert with_backlog(description) == listened
