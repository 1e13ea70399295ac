"""Daphne's server, listening with a deep accept queue and forgetting a request as soon as it has
ended; and the `api` role's, listening with dragonfly/api_http.py's connections (`ApiServer`).

Daphne listens through Twisted's endpoints, whose accept queue holds 50 connections unless the
endpoint says otherwise, and its command line cannot say it. Behind nginx, which opens a
connection to the gateway per request, a wave of 256 requests overflowed that queue: the kernel
dropped the SYNs past it and each such client retried a second later (290 overflows in one bench
phase, p99 1.5 s against p50 222 ms). Every listening endpoint here asks for `LISTEN_BACKLOG`
(uvicorn's and gunicorn's default; the kernel caps it at `net.core.somaxconn`) unless its
description names one.

Daphne keeps every request it serves in `Server.connections` until a sweep that runs once a
second (`application_checker`) finds its response sent and its application returned. Under load
that is every request of the last second still alive: at 1,000 requests a second, a thousand
finished requests (their headers, body buffer, scope and the application's task) held for up to a
second, walked by that sweep and by the timeout sweep every two seconds, and old enough by then
for the garbage collector's older generations. Here a request is forgotten the moment both have
happened: its response ended (or its client left) and its application returned.

What the sweep does beyond that is left to it: an application that raised (the sweep logs it and
answers 500 if the client is still there), and one still running after its client left
(cancelled after `application_close_timeout`). docs/performance.md, "Optimisations", has what
this saves. Imported by dragonfly/daphne.py after uvloop's policy is installed (importing
`daphne.server` makes Daphne's event loop).
"""

from __future__ import annotations

import asyncio
import logging

from daphne import server

from dragonfly import api_http

logger = logging.getLogger("dragonfly.daphne_server")

LISTEN_BACKLOG = 2048
# Twisted's listening endpoints that take a `backlog` (`fd:` adopts a socket already listening).
_LISTENING_KINDS = ("tcp", "tcp6", "unix", "ssl")


def with_backlog(description: str) -> str:
    """`description` (a Twisted server endpoint string) with `LISTEN_BACKLOG` unless it has one."""
    kind = description.split(":", 1)[0]
    if kind not in _LISTENING_KINDS or "backlog=" in description:
        return description
    return f"{description}:backlog={LISTEN_BACKLOG}"


class Server(server.Server):
    def run(self) -> None:
        described: list[str] = self.endpoints  # type: ignore[has-type]  # Daphne's, untyped
        self.endpoints = [with_backlog(str(e)) for e in described]
        super().run()

    def create_application(self, protocol, scope):
        queue = super().create_application(protocol, scope)
        instance = self.connections.get(protocol, {}).get("application_instance")
        if instance is not None:
            instance.add_done_callback(lambda _: self._forget(protocol))
        return queue

    def protocol_disconnected(self, protocol) -> None:
        if protocol not in self.connections:  # already forgotten: nothing is left to mark
            return
        super().protocol_disconnected(protocol)
        self._forget(protocol)

    def _forget(self, protocol) -> None:
        """Drop `protocol` if its response has ended and its application returned cleanly."""
        details = self.connections.get(protocol)
        if details is None or "disconnected" not in details:
            return
        instance: asyncio.Future | None = details.get("application_instance")
        if instance is not None and not _returned(instance):
            return
        del self.connections[protocol]


def _returned(instance: asyncio.Future) -> bool:
    """Done without an exception to report (a cancellation is not reported by the sweep either)."""
    return instance.done() and (instance.cancelled() or instance.exception() is None)


class ApiServer(Server):
    """The `api` role's server: listening with dragonfly/api_http.py's `Connection`s on the event
    loop's own sockets (uvloop's), not Twisted's."""

    def run(self) -> None:
        from twisted.internet import reactor  # Daphne's, installed when daphne.server loaded

        endpoints = [
            api_http.parse_endpoint(str(description), LISTEN_BACKLOG)
            for description in self.endpoints
        ]
        self.endpoints = []  # nothing for Twisted to listen on
        self.api_listeners: list[asyncio.Server] = []
        reactor.callWhenRunning(  # type: ignore[attr-defined]
            lambda: asyncio.ensure_future(self._listen(endpoints))
        )
        reactor.addSystemEventTrigger("before", "shutdown", self._stop_listening)  # type: ignore[attr-defined,arg-type]
        super().run()

    async def _listen(self, endpoints: list[dict]) -> None:
        loop = asyncio.get_running_loop()
        for endpoint in endpoints:
            try:
                listener = await api_http.listen(loop, lambda: api_http.Connection(self), endpoint)
            except OSError as exc:
                logger.critical("Listen failure: %s", exc)
                self.stop()
                return
            self.api_listeners.append(listener)
            for sock in listener.sockets:
                address = sock.getsockname()
                if isinstance(address, tuple):
                    self.listening_addresses.append(address[:2])
                    logger.info("Listening on TCP address %s:%s", *address[:2])

    def _stop_listening(self) -> None:
        for listener in self.api_listeners:
            listener.close()
