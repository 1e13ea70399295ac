"""The money fast path for the event loop: the same PL/pgSQL calls as fastpath.py, over psycopg's
async connections, so the gateway's hold and settlement never hop to a worker thread.

Same validation, same SQL, same result mapping as the synchronous path; only the connection
differs: a small autocommit pool per event loop (pools are loop-bound), opened on first use with
Django's own connection parameters for the default database. `pools_close()` closes the running
loop's pool (the gateway's lifespan shutdown and tests call it).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import psycopg
from django.conf import settings
from django.db import connections
from psycopg_pool import AsyncConnectionPool

from billing.services.fastpath import (
    HOLD_SQL,
    SETTLE_SQL,
    VOID_SQL,
    fastpath_enabled,
    fastpath_error,
    settle_params,
)
from billing.services.holds import check_request_id, hold_check, hold_outcome
from billing.services.settlement import settle_result, settlement_validate
from billing.settlement import Settlement, SettleResult

logger = logging.getLogger(__name__)

_pools: dict[int, AsyncConnectionPool] = {}


def available() -> bool:
    """True where the fast path runs (PostgreSQL, not switched off); else use the sync services."""
    return fastpath_enabled()


def _connection_kwargs() -> dict[str, Any]:
    params = connections["default"].get_connection_params()
    params.pop("cursor_factory", None)  # Django's synchronous cursor class
    params.pop("context", None)  # Django's adapters: the functions take and return plain values
    params["autocommit"] = True  # each SELECT df_...() is its own transaction
    return params


async def _pool() -> AsyncConnectionPool:
    loop_id = id(asyncio.get_running_loop())
    pool = _pools.get(loop_id)
    if pool is None:
        pool = AsyncConnectionPool(
            kwargs=_connection_kwargs(),
            min_size=1,
            max_size=settings.DRAGONFLY_GATEWAY_DB_POOL_SIZE,
            open=False,
            name="gateway-money",
        )
        _pools[loop_id] = pool
        await pool.open()
    return pool


async def pools_close() -> None:
    pool = _pools.pop(id(asyncio.get_running_loop()), None)
    if pool is not None:
        await pool.close()


async def _call(sql: str, params: tuple[Any, ...]) -> tuple[Any, ...]:
    pool = await _pool()
    try:
        async with pool.connection() as conn:
            cursor = await conn.execute(sql, params)
            row = await cursor.fetchone()
    except psycopg.Error as exc:
        mapped = fastpath_error(exc)
        if mapped is not None:
            raise mapped from None
        raise
    assert row is not None
    return tuple(row)


async def hold_place(*, request_id: str, user_id: int, amount_nusd: int) -> None:
    """billing.services.hold_place, on the event loop."""
    hold_check(request_id=request_id, amount_nusd=amount_nusd)
    (outcome,) = await _call(HOLD_SQL, (request_id, user_id, amount_nusd, True))
    hold_outcome(str(outcome))


async def hold_void(*, request_id: str, reason: str) -> None:
    """billing.services.hold_void, on the event loop."""
    check_request_id(request_id)
    await _call(VOID_SQL, (request_id, reason))


async def request_settle(*, settlement: Settlement) -> SettleResult:
    """billing.services.request_settle, on the event loop (idempotent on request_id)."""
    settlement_validate(settlement)
    try:
        row = await _call(SETTLE_SQL, settle_params(settlement))
    except psycopg.errors.UniqueViolation:
        # Lost the race for the request id to a concurrent settlement of the same request: the
        # second call finds it settled and reports it as such.
        row = await _call(SETTLE_SQL, settle_params(settlement))
    return settle_result(settlement, row)
