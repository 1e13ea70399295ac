"""Daphne on uvloop: `python -m dragonfly.daphne <daphne's own arguments>`.

Daphne creates its asyncio event loop when `daphne.server` is imported and runs Twisted's asyncio
reactor on it; with uvloop's policy installed first, that loop is uvloop's (libuv, in C). Every
request's callbacks, timers, futures and socket reads then cost a fraction of the pure-Python
loop's (docs/performance.md has the measurement). Everything else is Daphne's CLI, unchanged.
"""

import asyncio

import uvloop


def main() -> None:
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    from daphne.cli import CommandLineInterface

    CommandLineInterface.entrypoint()


if __name__ == "__main__":
    main()
