"""Settling what a dead gateway process left (process.py says how it is found and why it is safe).

For each process whose lease ran out: every settlement it could not land (the database was
unreachable: billing_calls.py kept it in Redis) is settled as it was; every stream it checkpointed is
settled for what it had delivered (billing policy: as if the buyer had hung up then); every other
hold it placed is voided
(its request delivered nothing: a plain answer is sent whole at its end); its capacity slots are
given back; then its lease and checkpoints are deleted. One reaper at a time per dead process (its
lease row is locked, others skip it), and every step is exactly-once on the request id anyway.
Runs on each live gateway process's lease loop and as a Celery beat task (gateway/tasks.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

logger = logging.getLogger("gateway")

VOID_REASON = "its gateway process stopped before delivering anything"


@dataclass
class Reaped:
    processes: int = 0
    settled: int = 0
    voided: int = 0
    slots: int = 0


def reap_dead(*, exclude: str | None = None) -> Reaped:
    """Reap every gateway process whose lease ran out (never `exclude`, the caller's own)."""
    from gateway.models import GatewayProcess

    cutoff = timezone.now() - timedelta(seconds=settings.DRAGONFLY_PROCESS_LEASE_SECONDS)
    dead = GatewayProcess.objects.filter(heartbeat_at__lt=cutoff).exclude(id=exclude or "")
    total = Reaped()
    for process_id in dead.values_list("id", flat=True):
        reaped = _reap(process_id, cutoff)
        total.processes += reaped.processes
        total.settled += reaped.settled
        total.voided += reaped.voided
        total.slots += reaped.slots
    return total


def _reap(process_id: str, cutoff) -> Reaped:
    from billing import services
    from billing.models import Hold, HoldStatus
    from gateway import capacity, process
    from gateway.models import GatewayProcess, StreamCheckpoint

    reaped = Reaped()
    with transaction.atomic():
        lease = (
            GatewayProcess.objects.select_for_update(skip_locked=True)
            .filter(id=process_id, heartbeat_at__lt=cutoff)
            .first()
        )
        if lease is None:  # renewed meanwhile, or another reaper has it
            return reaped
        owed = _from_checkpoints(process_id)
        owed.update(_unsettled(process_id))  # a final settlement beats a stream's checkpoint
        settled = set()
        for request_id, settlement in owed.items():
            try:
                with transaction.atomic():  # exactly once: one that settled itself is a no-op
                    result = services.request_settle(settlement=settlement)
            except Exception:
                logger.exception("settling %s for its dead process failed", request_id)
                continue
            settled.add(request_id)
            reaped.settled += not result.already_settled
        held = (
            Hold.objects.filter(
                status=HoldStatus.ACTIVE,
                request_id__startswith=process.request_id_prefix(process_id),
            )
            .exclude(request_id__in=settled)
            .values_list("request_id", flat=True)
        )
        for request_id in list(held):
            with transaction.atomic():
                services.hold_void(request_id=request_id, reason=VOID_REASON)
            reaped.voided += 1
        reaped.slots = capacity.release_process(process_id)
        _forget_unsettled(process_id)
        StreamCheckpoint.objects.filter(process_id=process_id).delete()
        lease.delete()
        reaped.processes = 1
    logger.warning(
        "reaped dead gateway process %s (last seen %s): %d requests settled (streams as "
        "delivered, answers whose settlement had not landed), %d holds voided, %d capacity "
        "slots given back",
        process_id,
        lease.heartbeat_at.isoformat(),
        reaped.settled,
        reaped.voided,
        reaped.slots,
    )
    return reaped


def _from_checkpoints(process_id: str) -> dict:
    from billing.settlement_data import Settlement
    from gateway.models import StreamCheckpoint

    rows = StreamCheckpoint.objects.filter(process_id=process_id)
    return {r.request_id: Settlement(**r.settlement) for r in rows}


def _unsettled(process_id: str) -> dict:
    from gateway import billing_calls

    try:
        return billing_calls.unsettled(process_id)
    except Exception as exc:  # Redis down: those holds are voided instead (logged)
        logger.error("settlements %s left in redis unreadable (%r)", process_id, exc)
        return {}


def _forget_unsettled(process_id: str) -> None:
    from gateway import billing_calls
    from redis_clients.clients import get_redis

    try:
        get_redis().delete(billing_calls.unsettled_key(process_id))
    except Exception as exc:
        logger.warning("settlements of %s left in redis not deleted (%r)", process_id, exc)
