"""Hold and settlement calls into billing, shielded from cancellation.

On PostgreSQL they run on the event loop (billing's async fast path: one statement each over a
pooled async connection, batched with concurrent calls); elsewhere (SQLite, or the fast path
switched off) in a worker thread through the synchronous services. Either way the work runs in a
task of its own: when the buyer disconnects and the request's task is cancelled, the settlement
keeps running to its end.
"""

from __future__ import annotations

import asyncio
import logging

from asgiref.sync import sync_to_async

from billing.errors import InsufficientBalance
from billing.services import fastpath_async
from billing.settlement import Settlement, SettleResult
from dragonfly.metrics import GATEWAY_SETTLEMENTS
from gateway import background
from gateway.errors import GatewayError

logger = logging.getLogger("gateway")


async def _shielded(name: str, **kwargs):
    if fastpath_async.available():  # its calls run in a task of their own (dragonfly/batching.py)
        return await getattr(fastpath_async, name)(**kwargs)
    from billing import services

    work = sync_to_async(getattr(services, name), thread_sensitive=False)(**kwargs)
    return await asyncio.shield(background.spawn(work))


async def hold(*, request_id: str, user_id: int, amount_nusd: int) -> None:
    """Reserve the worst case, or 403 with the seed's exact "Insufficient balance"."""
    if amount_nusd <= 0:
        return  # a free listing: nothing to reserve
    try:
        await _shielded(
            "hold_place", request_id=request_id, user_id=user_id, amount_nusd=amount_nusd
        )
    except InsufficientBalance:
        raise GatewayError(403, "Insufficient balance") from None


async def settle(settlement: Settlement) -> SettleResult:
    result = await _shielded("request_settle", settlement=settlement)
    GATEWAY_SETTLEMENTS.labels(settlement.outcome).inc()
    return result


async def void(*, request_id: str, reason: str) -> None:
    await _shielded("hold_void", request_id=request_id, reason=reason)
    GATEWAY_SETTLEMENTS.labels("voided").inc()
