"""Daphne on uvloop: `python -m dragonfly.daphne <daphne's own arguments>`.

Daphne creates its asyncio event loop when `daphne.server` is imported and runs Twisted's asyncio
reactor on it; with uvloop's policy installed first, that loop is uvloop's (libuv, in C). Every
request's callbacks, timers, futures and socket reads then cost a fraction of the pure-Python
loop's (docs/performance.md has the measurement).

One more setting Daphne does not expose: Twisted parses the body of every POST that has a
Content-Type into `request.args` (a form submission), starting with an `email.message` parse of
the header. Daphne never reads `request.args` (ASGI applications get the raw body), so that work
is switched off for Daphne's requests: about 70 µs of CPU per /v1 request. Everything else is
Daphne's CLI, unchanged.
"""

import asyncio

import uvloop


def _skip_form_parsing() -> None:
    from daphne import http_protocol

    class WebRequest(http_protocol.WebRequest):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self._parsePOSTFormSubmission = False

    # HTTPFactory.buildProtocol sets `protocol.requestFactory = WebRequest` by this module name.
    http_protocol.WebRequest = WebRequest  # type: ignore[misc]


def main() -> None:
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    _skip_form_parsing()
    from daphne.cli import CommandLineInterface

    CommandLineInterface.entrypoint()


if __name__ == "__main__":
    main()
