"""Daphne on uvloop: `python -m dragonfly.daphne <daphne's own arguments>`.

Daphne creates its asyncio event loop when `daphne.server` is imported and runs Twisted's asyncio
reactor on it; with uvloop's policy installed first, that loop is uvloop's (libuv, in C). Every
request's callbacks, timers, futures and socket reads then cost a fraction of the pure-Python
loop's.

Two settings Daphne does not expose. Twisted parses the body of every POST that has a
Content-Type into `request.args` (a form submission), starting with an `email.message` parse of
the header. Daphne never reads `request.args` (ASGI applications get the raw body), so that work
is switched off for Daphne's requests. And Twisted formats a combined-log line for every finished
request and hands it to its own log, next to Daphne's access log (`--access-log`), which is the
one kept; Twisted's line is no longer made.

The edge refuses what it must before reading it (dragonfly/edge.py): a body over
DRAGONFLY_MAX_BODY_BYTES from its Content-Length or as a chunked body passes the cap, oversized or
too many headers and malformed requests in JSON, in the contract's error shape. Its request and
channel classes are installed below, as the two settings are, with what makes an answer leave at
once instead of at the event loop's next poll (dragonfly/daphne_output.py).

Daphne's server is replaced by one that forgets a request as soon as its response has ended and
its application returned, instead of at a sweep once a second (dragonfly/daphne_server.py).

Once serving, everything loaded at start (Django, the apps, the libraries: about a million
objects) is moved out of the cyclic garbage collector's view (`gc.freeze()`): it lives as long as
the process, so no collection on the request path walks it. And the youngest generation is
collected once 50,000 more container objects are alive than at the last collection, not Python's
700. Python counts the container objects allocated less those freed since the last collection, and
the requests in flight hold thousands of them (at c = 256, 11,000-35,000 young objects were alive
at each collection with a threshold of 10,000): below that, the requests' own rise and fall set
collections off several times a second, each walking the live requests and promoting them, to be
walked again by the older generations' collections. At 50,000 a collection comes only when that
many more objects stay alive, and pauses the process 10-15 ms (each pause is on /metrics:
observability/gc_pauses.py). A request leaves almost no cycles behind (one object in eight
requests; none on the 401 and 429 answers), so nothing waits long to be freed. What each of these
saves: docs/performance.md, "Optimisations" and "Measured stories behind the code".

Two libraries Daphne brings are loaded leaner, for memory (docs/performance.md, "Optimisations").
Twisted loads its TLS support (pyOpenSSL and its own OpenSSL bindings: 4.5 MB resident) whenever
pyOpenSSL is importable, and Daphne's `-e ssl:` endpoints need it; this process serves plain HTTP
behind the edge, which terminates TLS (docker/nginx/), so the import is refused and Twisted runs as
it does where pyOpenSSL is not installed (outgoing TLS, the upstream client's and Stripe's, uses Python's `ssl`).
And autobahn, Daphne's websocket protocol (the live pages: dragonfly/websocket_routes.py), would
validate text frames and mask with its native helpers, which load cffi (1 MB); the live pages'
browsers send almost nothing, so its pure-Python ones are chosen (AUTOBAHN_USE_NVX=0).

A process of the `api` role (DRAGONFLY_ROLE; docs/deploy.md, "Roles"), which serves /v1 and the
probes only, is leaner again. Its HTTP is not Twisted's: `ApiServer` listens with connections that
parse with llhttp on uvloop's own sockets (dragonfly/api_http.py), with the edge's rules, and
refuses a websocket upgrade in JSON; so the Twisted classes below are not installed there. Daphne
gets a websocket factory that builds nothing (NoWebSockets: autobahn, txaio, click and cbor2 never
load). And the process runs again, in place, under Python's -OO (`_optimised`): no docstrings and
no `assert`s in its modules. Nothing on /v1 reads a docstring (the gateway's OpenAPI document is
YAML; drf-spectacular, which makes the management API's descriptions from docstrings, runs in the
web processes) and the apps' `assert`s only narrow types (the money path's checks of what
PostgreSQL answered are explicit raises). With the apps /v1 reads and no Channels router, that is
15 MB less per process; its `.opt-2.pyc` files are compiled into the image (docker/Dockerfile),
since without them each start would compile every module from source.

Daphne speaks no ASGI lifespan, so the gateway's startup (take the process's lease, which lets its
peers settle what it leaves if it dies: gateway/process.py) runs when the reactor starts, and its
shutdown (give back capacity slots, write pending health, apply the money batches still queued,
give the lease back, close the upstream and database pools) from a Twisted shutdown trigger, once
the requests Daphne cancels at shutdown have ended. Everything else is Daphne's CLI, unchanged.
"""

import asyncio
import gc
import os
import sys
import types

import uvloop


class NoWebSockets:
    """Daphne's WebSocketFactory in a process that serves no websocket (the `api` role): it builds
    nothing, and the edge refuses every upgrade request before Daphne would ask it for a protocol
    (EdgeRequest.process)."""

    def __init__(self, *args, **kwargs) -> None:
        pass

    def setProtocolOptions(self, **options) -> None:
        pass

    def buildProtocol(self, addr) -> None:
        return None


def _load_lean(websockets: bool) -> None:
    sys.modules.setdefault("OpenSSL", None)  # type: ignore[arg-type]  # import raises ImportError
    if websockets:
        os.environ.setdefault("AUTOBAHN_USE_NVX", "0")
    else:  # daphne.server imports its WebSocketFactory from here (and with it autobahn)
        ws_protocol = types.ModuleType("daphne.ws_protocol")
        ws_protocol.WebSocketFactory = NoWebSockets  # type: ignore[attr-defined]
        sys.modules.setdefault("daphne.ws_protocol", ws_protocol)


def _install_request() -> None:
    """Daphne's request with the edge's refusals and its output sent at once, without Twisted's
    form parsing."""
    from daphne import http_protocol

    from dragonfly.daphne_output import OutputRequest

    class WebRequest(OutputRequest):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self._parsePOSTFormSubmission = False

    # HTTPFactory.buildProtocol sets `protocol.requestFactory = WebRequest` by this module name.
    http_protocol.WebRequest = WebRequest  # type: ignore[misc]


def _install_http_factory() -> None:
    from daphne import http_protocol, server
    from twisted.web import http

    from dragonfly.daphne_output import OutputChannel

    class HTTPFactory(http_protocol.HTTPFactory):
        def protocol(self):
            """Twisted's HTTP/1.1 channel with the edge's refusals (dragonfly/edge.py) and its
            output sent at once (dragonfly/daphne_output.py)."""
            return http._GenericHTTPChannelProtocol(OutputChannel())

        def log(self, request) -> None:
            """Daphne's own access log covers this (Server.log_action)."""

    # Server.__init__ builds its factory by this module name.
    server.HTTPFactory = HTTPFactory  # type: ignore[misc]


YOUNG_GENERATION_THRESHOLD = 50_000


def _collector_for_serving() -> None:
    from observability import gc_pauses

    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, middle, oldest)
    gc_pauses.install()  # each collection's pause, on /metrics


def _gateway_shutdown(cli):
    """A Deferred for the gateway's shutdown, run once the requests Daphne is cancelling (its own
    shutdown trigger) have ended, so their settlements are queued before the pools close."""
    from twisted.internet import defer

    from gateway.asgi import shutdown

    async def after_requests() -> None:
        server = cli.server
        instances = (
            []
            if server is None
            else [details["application_instance"] for details in server.connections.values()]
        )
        await asyncio.sleep(0)  # Daphne's trigger cancels them
        if instances:
            await asyncio.wait(instances, timeout=10)
        await shutdown()

    return defer.Deferred.fromFuture(asyncio.ensure_future(after_requests()))


def _gateway_start() -> None:
    """Create the loop's gateway runtime and take the process's lease (gateway/runtime.py)."""
    from gateway import runtime

    runtime.start()


def _role() -> str:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dragonfly.settings")
    from django.conf import settings

    return settings.DRAGONFLY_ROLE


def _optimised() -> None:
    """Run again, in place (the same process), under -OO and without column tables in code objects
    (`-X no_debug_ranges`: tracebacks lose their ^^^ marks); the interpreter's own options and the
    arguments are kept."""
    flags = ["-OO", "-X", "no_debug_ranges"]
    os.execv(sys.executable, [sys.orig_argv[0], *flags, *sys.orig_argv[1:]])  # noqa: S606


def prepare(api: bool) -> None:
    """What must come before Daphne's modules load: uvloop's policy (daphne.server makes its loop
    on import), the lean imports, and, where Twisted serves HTTP (not the `api` role:
    dragonfly/api_http.py), its request and channel classes."""
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    _load_lean(websockets=not api)
    if not api:
        _install_request()
        _install_http_factory()


def main() -> None:
    api = _role() == "api"
    if api and sys.flags.optimize < 2:
        _optimised()
    prepare(api)
    from daphne.cli import CommandLineInterface  # installs Twisted's asyncio reactor
    from twisted.internet import reactor

    from dragonfly.daphne_server import ApiServer, Server

    cli = CommandLineInterface()
    # ApiServer: HTTP/1.1 on llhttp and uvloop's sockets (dragonfly/api_http.py). Both forget a
    # request once it has ended (dragonfly/daphne_server.py).
    cli.server_class = ApiServer if api else Server
    reactor.callWhenRunning(_collector_for_serving)  # type: ignore[attr-defined]
    # Once the loop runs (callWhenRunning fires before it does).
    reactor.callLater(0, _gateway_start)  # type: ignore[attr-defined,arg-type]
    # Only "before" shutdown triggers are waited for (Twisted's three-phase events).
    reactor.addSystemEventTrigger("before", "shutdown", _gateway_shutdown, cli)  # type: ignore[attr-defined,arg-type]
    cli.run(sys.argv[1:])


if __name__ == "__main__":
    main()
