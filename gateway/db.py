"""Synchronous ORM work from the event loop: on a worker thread, with a healthy Django connection.

/v1 bypasses Django's request cycle, so nothing else runs `close_old_connections()` on the worker
threads `sync_to_async(thread_sensitive=False)` uses: a connection that PostgreSQL terminated,
that timed out idle or that outlived a restart stayed in its thread and failed every call made
there. Every sync database touch on /v1 goes through `db_call` instead, which does what Django does
at a request's start (drop a connection that is past CONN_MAX_AGE or broken; with
CONN_HEALTH_CHECKS the next query first pings it), retries an idempotent call once on a fresh
connection, and turns a database that still cannot be reached into a clean 503. After the call it
does what Django does at a request's end: the connection goes back to Django's pool
(docs/connections.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.db import InterfaceError, OperationalError, close_old_connections, connections

from gateway.errors import GatewayError

logger = logging.getLogger("gateway")

T = TypeVar("T")

UNREACHABLE = "The marketplace's database is unreachable; retry with exponential backoff."
RETRY_AFTER_SECONDS = 1
CONNECTION_ERRORS = (OperationalError, InterfaceError)


class DatabaseUnavailable(GatewayError):
    """503: the database could not be reached (after the one retry an idempotent call gets)."""

    def __init__(self) -> None:
        super().__init__(
            503, UNREACHABLE, headers=[(b"retry-after", str(RETRY_AFTER_SECONDS).encode())]
        )


def _run(fn: Callable[..., T], args: tuple, kwargs: dict, idempotent: bool) -> T:
    attempts = 2 if idempotent else 1
    for attempt in range(1, attempts + 1):
        close_old_connections()  # past CONN_MAX_AGE, or errors since: closed; else pinged once
        try:
            return fn(*args, **kwargs)
        except CONNECTION_ERRORS as exc:
            for conn in connections.all(initialized_only=True):
                conn.close()  # never reuse it: the next call on this thread connects afresh
            name = getattr(fn, "__qualname__", repr(fn))
            if attempt < attempts:
                logger.warning("database call %s failed (%s); retrying once", name, exc)
                continue
            logger.error("database call %s failed (%s): database unreachable", name, exc)
            raise DatabaseUnavailable() from exc
        finally:
            # As at a request's end: the connection goes back to Django's pool, so an idle
            # worker thread holds none (and one whose loop ends takes none with it).
            close_old_connections()
    raise AssertionError("unreachable")


async def db_call(fn: Callable[..., T], *args: Any, idempotent: bool, **kwargs: Any) -> T:
    """`fn(*args, **kwargs)` on a worker thread with a usable connection; an idempotent call (every
    read) is retried once on a fresh connection. DatabaseUnavailable (503) when it cannot run."""
    return await sync_to_async(_run, thread_sensitive=False)(fn, args, kwargs, idempotent)
