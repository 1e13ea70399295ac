"""Daphne's server, forgetting a request as soon as it has ended.

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

from daphne import server


class Server(server.Server):
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
