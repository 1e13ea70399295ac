"""This gateway process: its id, carried by everything it leaves behind, and its lease.

A process that dies without shutting down (SIGKILL, out of memory, a lost machine) leaves what its
requests in flight held: holds on buyers' wallets, capacity slots in Redis, streams half delivered.
Each carries the process's id: request ids are "req_" + process id + random (so every hold is
tagged), capacity slot members start with it (capacity.py), and stream checkpoints name it
(checkpoints.py). The hold is written before the upstream call; the checkpoints as content flows.

While it lives, the process renews its lease in PostgreSQL (GatewayProcess.heartbeat_at) every
quarter of DRAGONFLY_PROCESS_LEASE_SECONDS, writes its checkpoints about once a second, and looks
for dead peers. A process whose lease is older than DRAGONFLY_PROCESS_LEASE_SECONDS is dead: the
first live process (or Celery beat) to see it settles its streams for what they delivered, voids
its other holds and gives back its slots (reaper.py). So after a crash, holds and slots come back
within about 1.5 leases (30 s by default), not when the hold's TTL runs out.

A process declared dead that was only cut off from the database (for longer than a lease) is not
harmed: its settlements, when they land, are exactly-once on the request id like any other.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket

from django.conf import settings
from django.utils import timezone

from gateway import checkpoints, reaper, runtime
from gateway.db import db_call

logger = logging.getLogger("gateway")

ID = secrets.token_hex(4)
_REQUEST_PREFIX = "req_"


def request_id() -> str:
    """A new request id of this process: "req_" and 24 hex digits, the first 8 this process's id."""
    return _REQUEST_PREFIX + ID + secrets.token_hex(8)


def request_id_prefix(process_id: str) -> str:
    """What the request ids of that process start with."""
    return _REQUEST_PREFIX + process_id


def _renew(rows: list, ended: list[str]) -> None:
    """Renew the lease (re-created if a reaper removed it), write the streams' checkpoints and
    drop those of streams that have settled, in one transaction."""
    from django.db import transaction

    from gateway.models import GatewayProcess

    now = timezone.now()
    with transaction.atomic():
        updated = GatewayProcess.objects.filter(id=ID).update(heartbeat_at=now)
        if not updated:
            GatewayProcess.objects.create(
                id=ID,
                host=socket.gethostname()[:255],
                pid=os.getpid(),
                started_at=now,
                heartbeat_at=now,
            )
        checkpoints.write(ID, rows, ended, now)


def _leave() -> None:
    from gateway.models import GatewayProcess, StreamCheckpoint

    StreamCheckpoint.objects.filter(process_id=ID).delete()
    GatewayProcess.objects.filter(id=ID).delete()


async def _keep_lease() -> None:
    from gateway import billing_calls, capacity

    lease = settings.DRAGONFLY_PROCESS_LEASE_SECONDS
    renew_every = reap_every = lease / 4
    loop = asyncio.get_running_loop()
    renewed_at = reaped_at = -float(lease)
    while True:
        rows, ended = checkpoints.collect()
        now = loop.time()
        if rows or ended or now - renewed_at >= renew_every:
            try:
                await db_call(_renew, rows, ended, idempotent=True)
                renewed_at = now
            except Exception as exc:
                checkpoints.unwritten(rows, ended)  # tried again on the next turn
                logger.warning("lease renewal of gateway process %s failed: %r", ID, exc)
        if now - reaped_at >= reap_every:
            reaped_at = now
            try:
                await db_call(reaper.reap_dead, exclude=ID, idempotent=True)
            except Exception as exc:
                logger.warning("reaping dead gateway processes failed: %r", exc)
        billing_calls.sweep_leases()  # balance leases whose time is up, idle, are voided
        capacity.sweep()  # capacity slots a share did not use since the last turn go back
        await asyncio.sleep(checkpoints.EVERY_SECONDS)


def start() -> None:
    """Take the lease and keep it (runtime.start(): Daphne's startup and the ASGI lifespan's)."""
    runtime.current().service("lease", _keep_lease)


async def stop() -> None:
    """A clean stop, after the requests in flight have settled: give the lease back, unless a
    settlement still waits for the database (its peers then settle it once the lease runs out)."""
    from gateway import billing_calls

    if runtime.current().stop_service("lease") is None:
        return
    if billing_calls.retrying():
        logger.error(
            "gateway process %s stops with %d settlements waiting for the database: its peers "
            "settle them once its lease runs out",
            ID,
            billing_calls.retrying(),
        )
        return
    try:
        await db_call(_leave, idempotent=True)
    except Exception as exc:  # its peers reap it once the lease runs out
        logger.warning("gateway process %s could not give its lease back: %r", ID, exc)
