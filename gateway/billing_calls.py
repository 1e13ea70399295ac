"""Hold and settlement calls into billing, shielded from cancellation, surviving database faults.

On PostgreSQL they run on the event loop (billing's async fast path: one statement each over a
pooled async connection, batched with concurrent calls); elsewhere (SQLite, or the fast path
switched off) in a worker thread through the synchronous services (gateway/db.py). Either way the
work runs in a task of its own: when the buyer disconnects and the request's task is cancelled,
the settlement keeps running to its end.

Database faults (docs/gateway.md, "Database faults"): every call is idempotent on its request id,
so a call whose connection was lost is sent again once on a fresh one (fastpath_async, db.py). A
hold that still cannot be placed is a 503 and nothing is held. A settlement or a void that still
cannot land is retried in the background with backoff (SETTLE_RETRY_DELAYS, then every 5 s) until
it lands, so an answered request is billed once the database is back. A settlement waiting so is
also kept in Redis under this process's id (`unsettled_key`) until it lands: should the process
die meanwhile, whoever reaps it settles it from there (reaper.py) instead of voiding its hold.

A busy buyer's requests draw from a balance lease instead of placing holds of their own
(balance_leases.py keeps the books): `hold` places the lease when one is wanted, `settle` and `void`
give each draw back, and a lease whose time or cover has run out is voided here once its
requests have settled (`_end`), or at the latest by the process's sweep (`sweep_leases`, every
turn of its lease loop) and at its stop (`end_leases`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import orjson
from django.conf import settings

from billing import services
from billing.errors import InsufficientBalance
from billing.services import fastpath_async
from billing.settlement_data import Settlement, SettleResult
from gateway import background, balance_leases, kv, process, runtime
from gateway.db import DatabaseUnavailable, db_call
from gateway.errors import GatewayError
from observability.metrics import GATEWAY_SETTLEMENTS, labelled
from redis_clients.clients import get_redis

logger = logging.getLogger("gateway")

SETTLE_RETRY_DELAYS = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0)  # then every 5 s


async def _hold_place(**kwargs) -> None:
    if fastpath_async.available():  # its calls run in a task of their own (event_loop/batching.py)
        return await fastpath_async.hold_place(**kwargs)
    return await _in_thread(services.hold_place, **kwargs)


async def _request_settle(settlement: Settlement) -> SettleResult:
    if fastpath_async.available():
        return await fastpath_async.request_settle(settlement=settlement)
    return await _in_thread(services.request_settle, settlement=settlement)


async def _hold_void(**kwargs) -> None:
    if fastpath_async.available():
        return await fastpath_async.hold_void(**kwargs)
    return await _in_thread(services.hold_void, **kwargs)


async def _in_thread(service: Callable, **kwargs):
    """A synchronous billing service in a worker thread, in a task of its own (shielded)."""
    # Holds, settlements and voids are idempotent on the request id: safe to send twice.
    work = db_call(service, idempotent=True, **kwargs)
    return await asyncio.shield(background.spawn(work))


def unreachable(exc: BaseException) -> bool:
    """The database could not be reached (not a refusal): the call may land later."""
    return isinstance(exc, DatabaseUnavailable) or fastpath_async.connection_error(exc)


async def hold(*, request_id: str, user_id: int, amount_nusd: int) -> str | None:
    """Reserve the worst case: drawn from the buyer's balance lease (its hold id is returned), else
    a hold of the request's own (None). 403 with the seed's exact "Insufficient balance", or 503
    when the database cannot be reached (nothing held)."""
    if amount_nusd <= 0:
        return None  # a free listing: nothing to reserve
    try:
        lease_id = await _lease_draw(request_id, user_id, amount_nusd)
        if lease_id is None:
            await _hold_place(request_id=request_id, user_id=user_id, amount_nusd=amount_nusd)
    except InsufficientBalance:
        raise GatewayError(403, "Insufficient balance") from None
    except Exception as exc:
        if not unreachable(exc):
            raise
        logger.error("hold for %s not placed: database unreachable (%r)", request_id, exc)
        raise DatabaseUnavailable() from exc
    return lease_id


def draw(*, request_id: str, user_id: int, amount_nusd: int) -> str | None:
    """The worst case drawn in memory from the buyer's balance lease in this process: the lease's
    hold id, or None when there is none that covers it."""
    if not _leasing():
        return None
    leases = runtime.current().balance_leases
    lease_id = leases.draw(request_id, user_id, amount_nusd, _now())
    _end(leases)
    return lease_id


def _leasing() -> bool:
    return bool(settings.DRAGONFLY_BALANCE_LEASE_REQUESTS) and fastpath_async.available()


def _now() -> float:
    return asyncio.get_running_loop().time()


async def _lease_draw(request_id: str, user_id: int, amount_nusd: int) -> str | None:
    """The hold id of the lease the request drew from; None: it places a hold of its own. A
    request that finds none, from a buyer whose previous request was a moment ago, places one
    (concurrent ones wait for that placement)."""
    lease_id = draw(request_id=request_id, user_id=user_id, amount_nusd=amount_nusd)
    if lease_id is not None or not _leasing():
        return lease_id
    leases = runtime.current().balance_leases
    if not leases.wants(user_id, _now()):
        return None
    placing = leases.placing.get(user_id)
    if placing is None:  # a task of its own: a request cancelled meanwhile leaks no lease
        placing = background.spawn(_lease_place(leases, user_id, amount_nusd))
        leases.placing[user_id] = placing
    await asyncio.shield(placing)  # a refused lease: the request places its own hold
    return leases.draw(request_id, user_id, amount_nusd, _now())


async def _lease_place(leases: balance_leases.Leases, user_id: int, amount_nusd: int) -> None:
    hold_id = balance_leases.new_hold_id(process.request_id_prefix(process.ID))
    size = balance_leases.size_for(amount_nusd)
    try:
        placed = await fastpath_async.lease_place(
            lease_id=hold_id,
            user_id=user_id,
            amount_nusd=size,
            headroom=settings.DRAGONFLY_BALANCE_LEASE_HEADROOM,
        )
    finally:
        del leases.placing[user_id]
    now = _now()
    if placed:
        leases.placed(user_id, hold_id, size, now)
    else:
        leases.refused(user_id, now)
    _end(leases)


def _end(leases: balance_leases.Leases) -> None:
    """Void what the ended leases still hold (off the request's path)."""
    for lease in leases.take_ended():
        background.spawn(void(request_id=lease.hold_id, reason=balance_leases.VOID_REASON))


def sweep_leases() -> None:
    """Retire the leases whose time is up; void those with nothing in flight."""
    leases = runtime.current().balance_leases
    leases.sweep(_now())
    _end(leases)


async def end_leases() -> None:
    """At a clean stop, once every request has settled: void what every lease still holds."""
    leases = runtime.current().balance_leases
    leases.retire_all()
    ended = leases.take_ended()
    reason = balance_leases.VOID_REASON
    await asyncio.gather(*(void(request_id=lease.hold_id, reason=reason) for lease in ended))


def _draw_done(request_id: str, debit_nusd: int | None) -> bool:
    """The request's draw from a lease is over (False if it drew from none)."""
    leases = runtime.current().balance_leases
    drew = leases.done(request_id, debit_nusd)
    if drew:
        _end(leases)
    return drew


async def settle(settlement: Settlement) -> SettleResult | None:
    """Settle now; None when the database cannot be reached now: the settlement is then retried in
    the background until it lands (the buyer already has their answer). Await it in a task that
    nothing cancels (trade.settle spawns one), so that it runs to its end whatever happens to the
    request: the settlement or its retry kept, the lease draw given back when it lands."""
    try:
        result = await _request_settle(settlement)
    except Exception as exc:
        if not unreachable(exc):
            _draw_done(settlement.request_id, None)
            raise
        await _keep(settlement)
        _retry_in_background(
            "settlement",
            settlement.request_id,
            lambda: _request_settle(settlement),
            exc,
            landed=lambda: _landed(settlement),
        )
        return None
    labelled(GATEWAY_SETTLEMENTS, settlement.outcome).inc()
    _draw_done(settlement.request_id, result.cost_nusd)
    return result


async def void(*, request_id: str, reason: str) -> None:
    """Release the hold (a draw from a lease goes back to it, no call); if the database cannot be
    reached now, retried in the background."""
    if _draw_done(request_id, 0):
        return
    try:
        await _hold_void(request_id=request_id, reason=reason)
    except Exception as exc:
        if not unreachable(exc):
            raise
        _retry_in_background(
            "void",
            request_id,
            lambda: _hold_void(request_id=request_id, reason=reason),
            exc,
            landed=lambda: labelled(GATEWAY_SETTLEMENTS, "voided").inc(),
        )
        return
    labelled(GATEWAY_SETTLEMENTS, "voided").inc()


def unsettled_key(process_id: str) -> str:
    """The Redis hash of a process's settlements still waiting for the database."""
    return f"unsettled:{process_id}"


async def _keep(settlement: Settlement) -> None:
    fields = orjson.dumps(settlement.as_dict())
    key = unsettled_key(process.ID)
    await kv.attempt("unsettled", lambda r: r.hset(key, settlement.request_id, fields))


def _landed(settlement: Settlement) -> None:
    labelled(GATEWAY_SETTLEMENTS, settlement.outcome).inc()
    _draw_done(settlement.request_id, None)
    key = unsettled_key(process.ID)
    background.spawn(kv.attempt("unsettled", lambda r: r.hdel(key, settlement.request_id)))


def unsettled(process_id: str) -> dict[str, Settlement]:
    """A dead process's settlements that never landed (the reaper's, synchronous)."""
    kept: dict[str, str] = get_redis().hgetall(unsettled_key(process_id))  # type: ignore[assignment]
    return {request_id: Settlement(**orjson.loads(fields)) for request_id, fields in kept.items()}


def retrying() -> int:
    """Settlements and voids of this process still waiting for the database."""
    return len(runtime.current().settling)  # request ids whose settlement or void is retried


def _retry_in_background(
    what: str,
    request_id: str,
    call: Callable[[], Awaitable[object]],
    first: BaseException,
    *,
    landed: Callable[[], None],
) -> None:
    logger.warning(
        "%s of %s failed: database unreachable (%r); retrying in the background",
        what,
        request_id,
        first,
    )
    settling = runtime.current().settling
    settling.add(request_id)
    task = background.spawn(_until_it_lands(what, request_id, call, landed))
    task.add_done_callback(lambda _: settling.discard(request_id))


async def _until_it_lands(
    what: str, request_id: str, call: Callable[[], Awaitable[object]], landed: Callable[[], None]
) -> None:
    """Retry `call` with backoff (each try on a fresh connection, see fastpath_async._rows and
    db.py) until it lands or a non-connection error ends it."""
    started = time.monotonic()
    attempt = 1
    while True:
        delay = SETTLE_RETRY_DELAYS[min(attempt - 1, len(SETTLE_RETRY_DELAYS) - 1)]
        await asyncio.sleep(delay)
        attempt += 1
        try:
            await call()
        except Exception as exc:
            if not unreachable(exc):
                logger.exception("%s of %s failed; the hold stays for the reaper", what, request_id)
                return
            logger.warning("%s of %s: attempt %d failed (%r)", what, request_id, attempt, exc)
            continue
        landed()
        logger.warning(
            "%s of %s landed on attempt %d after %.1f s",
            what,
            request_id,
            attempt,
            time.monotonic() - started,
        )
        return
