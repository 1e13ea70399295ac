"""The money fast path for the event loop: the same PL/pgSQL calls as fastpath.py, over psycopg's
async connections, so the gateway's hold and settlement never hop to a worker thread.

Same validation, same SQL, same result mapping as the synchronous path; only the connection
differs: a small autocommit pool per event loop (pools are loop-bound: the gateway runtime's
money_pool, gateway/runtime.py), opened on first use with Django's own connection parameters for
the default database. `pools_close()` closes the running loop's pool (the runtime's close() does
the same; tests call it).

Holds and settlements are batched (event_loop/batching.py): one of each in flight per event loop, and what
arrives meanwhile goes out as one `df_hold_place_batch` / `df_settle_apply_batch` call (one
transaction, one commit; migrations 0007, 0013). A lone request is sent alone, through the single
functions. If a batch fails as a whole (a broken invariant, a lost race for a request id), its
items are retried one by one, so each caller gets exactly the answer a single call gives.

Broken connections heal without a ping per call: a statement that fails because its connection
was lost (terminated, PostgreSQL restarted, idle timeout) makes the pool check every idle
connection (replacing the dead ones) and is sent once more on a fresh one. That is safe because
every statement here is idempotent on its request id (a hold placed twice is `exists`, a void of
a voided hold `noop`, a settlement's second call `already_settled`). Waiting for a connection is
bounded (`POOL_WAIT_SECONDS`); a batch that fails for want of a connection fails as a whole (its
items are not retried one by one against a database that is not there).
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
import psycopg
from django.conf import settings
from django.db import connections
from psycopg_pool import AsyncConnectionPool

from billing.errors import BillingError
from billing.services.fastpath import (
    HOLD_SQL,
    REPRICE_ATTEMPTS,
    SETTLE_SQL,
    VOID_SQL,
    fastpath_enabled,
    fastpath_error,
    settle_fields,
    settle_params,
    settle_repriced,
)
from billing.services.holds import check_request_id, hold_check, hold_outcome
from billing.services.settlement import settle_result, settlement_validate
from billing.settlement_data import Settlement, SettleResult
from event_loop.batching import Batcher
from gateway import runtime

logger = logging.getLogger(__name__)

MAX_BATCH = 100
POOL_WAIT_SECONDS = 3.0  # for a connection: ride out a quick restart, then give up (a 503)
# psycopg_pool reconnects a lost connection with backoff (1, 2, 4 s ...) for reconnect_timeout
# (5 minutes by default), so after a long outage the next attempt could be a minute away. Giving
# up after a few seconds lets the next request that waits for a connection start a new attempt at
# once: the pool is back within seconds of the database.
RECONNECT_GIVE_UP_SECONDS = 5.0

HOLD_BATCH_SQL = "SELECT request_id, outcome FROM df_hold_place_batch(%s::jsonb)"
SETTLE_BATCH_SQL = (
    "SELECT request_id, status, cost_nusd, buyer_debit_nusd, overrun_nusd, seller_credit_nusd,"
    " fee_nusd, fee_profile_id, fee_bps FROM df_settle_apply_batch(%s::jsonb, %s)"
    " ORDER BY item_no"
)


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
    state = runtime.current()
    pool = state.money_pool
    if pool is None:
        pool = state.money_pool = AsyncConnectionPool(
            kwargs=_connection_kwargs(),
            min_size=1,
            max_size=settings.DRAGONFLY_GATEWAY_DB_POOL_SIZE,
            open=False,
            timeout=POOL_WAIT_SECONDS,
            reconnect_timeout=RECONNECT_GIVE_UP_SECONDS,
            name="gateway-money",
        )
        await pool.open()
    return pool


async def pools_close() -> None:
    """Apply what the batchers still hold, then close the running loop's pool."""
    await runtime.current().close_money()


def connection_error(exc: BaseException) -> bool:
    """The database could not be reached or the connection was lost, not a refusal of the call:
    no pool connection in time (PoolTimeout), a connection lost client-side (no SQLSTATE),
    SQLSTATE class 08 (connection exception), 53 (too many connections, out of resources) or
    57P (terminated by an operator, a crash or a shutdown). Trying again later may succeed."""
    if not isinstance(exc, psycopg.OperationalError):
        return False
    state = exc.sqlstate or ""
    return state == "" or state[:2] in ("08", "53") or state.startswith("57P")


async def _rows(sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    pool = await _pool()
    for attempt in (1, 2):
        used: psycopg.AsyncConnection | None = None
        try:
            async with pool.connection() as conn:
                used = conn
                cursor = await conn.execute(sql, params)
                rows = await cursor.fetchall()
            return [tuple(row) for row in rows]
        except psycopg.Error as exc:
            mapped = fastpath_error(exc)
            if mapped is not None:
                raise mapped from None
            if attempt == 1 and used is not None and used.broken:
                # Its connection died (and the pool has dropped it); the idle ones may be dead
                # too (a restart kills them all): check them, then once more on a fresh one.
                logger.warning("money connection lost (%r); checking the pool, retrying once", exc)
                await pool.check()
                continue
            raise
    raise AssertionError("unreachable")


async def _call(sql: str, params: tuple[Any, ...]) -> tuple[Any, ...]:
    rows = await _rows(sql, params)
    if len(rows) != 1:  # not an assert: `python -O` would strip it from the money path
        raise RuntimeError(f"a money function answered {len(rows)} rows, not one")
    return rows[0]


def _loop_batchers() -> tuple[Batcher, Batcher, Batcher]:
    """This loop's batchers (several loops may run at once, one per thread): the runtime's."""
    state = runtime.current()
    batchers = state.money_batchers
    if batchers is None:
        batchers = state.money_batchers = (
            Batcher(_hold_batch, max_items=MAX_BATCH),
            Batcher(_settle_batch, max_items=MAX_BATCH),
            Batcher(_void_batch, max_items=MAX_BATCH),  # rare: no batch function, one by one
        )
    return batchers


async def _one_by_one(items, single) -> list:
    results: list = []
    for item in items:
        try:
            results.append(await single(item))
        except Exception as exc:
            results.append(exc)
    return results


async def _batch(items, *, single, sql: str, params, key=lambda item: item[0]) -> list:
    """One call for a lone item; else the batch function, retried one by one if it fails."""
    if len(items) == 1:
        return await _one_by_one(items, single)
    try:
        rows = await _rows(sql, params(items))
    except Exception as exc:
        if connection_error(exc):
            raise  # no database to retry the items on: every caller gets the error
        logger.info("a batch of %d failed as a whole; applying it one by one", len(items))
        return await _one_by_one(items, single)
    # One row per item, in order (the functions RETURN NEXT in their items' order); anything else
    # would hand one caller another's result, so it is checked even under `python -O`.
    if [row[0] for row in rows] != [key(item) for item in items]:
        raise RuntimeError(
            f"a batch of {len(items)} answered rows that are not its items, in order"
        )
    return [row[1:] for row in rows]


async def _hold_single(item: tuple[str, int, int]) -> tuple[Any, ...]:
    return await _call(HOLD_SQL, (*item, True))


async def _hold_batch(items: list[tuple[str, int, int]]) -> list:
    return await _batch(
        items,
        single=_hold_single,
        sql=HOLD_BATCH_SQL,
        params=lambda batch: (
            orjson.dumps(
                [{"request_id": r, "user_id": u, "amount_nusd": a} for r, u, a in batch]
            ).decode(),
        ),
    )


async def hold_place(*, request_id: str, user_id: int, amount_nusd: int) -> None:
    """billing.services.hold_place, on the event loop (batched with concurrent holds)."""
    hold_check(request_id=request_id, amount_nusd=amount_nusd)
    holds, _, _ = _loop_batchers()
    (outcome,) = await holds.submit((request_id, user_id, amount_nusd))
    hold_outcome(str(outcome))


LEASE_SQL = "SELECT df_lease_place(%s, %s, %s, %s)"


async def lease_place(*, lease_id: str, user_id: int, amount_nusd: int, headroom: int) -> bool:
    """Place a balance lease (billing migration 0019): True if placed, False when the wallet's
    available balance is under `headroom` times it (or there is no wallet). One statement, its
    own transaction, not batched: a process places one per busy buyer every few seconds."""
    hold_check(request_id=lease_id, amount_nusd=amount_nusd)
    (outcome,) = await _call(LEASE_SQL, (lease_id, user_id, amount_nusd, headroom))
    return outcome in ("placed", "exists")


async def _void_single(item: tuple[str, str]) -> tuple[Any, ...]:
    return await _call(VOID_SQL, item)


async def _void_batch(items: list[tuple[str, str]]) -> list:
    return await _one_by_one(items, _void_single)


async def hold_void(*, request_id: str, reason: str) -> None:
    """billing.services.hold_void, on the event loop."""
    check_request_id(request_id)
    _, _, voids = _loop_batchers()
    await voids.submit((request_id, reason))


async def _settle_once(settlement: Settlement) -> tuple[Any, ...]:
    try:
        return await _call(SETTLE_SQL, settle_params(settlement))
    except psycopg.errors.UniqueViolation:
        # Lost the race for the request id to a concurrent settlement of the same request: the
        # second call finds it settled and reports it as such.
        return await _call(SETTLE_SQL, settle_params(settlement))


async def _settle_single(settlement: Settlement) -> tuple[Any, ...]:
    for _ in range(REPRICE_ATTEMPTS):
        row = await _settle_once(settlement)
        if not settle_repriced(settlement, row):
            return row
    raise BillingError(
        f"The seller's fee kept changing while request {settlement.request_id} settled."
    )


async def _settle_batch(items: list[Settlement], *, attempt: int = 1) -> list:
    """One df_settle_apply_batch call. Items priced at a fee that is no longer the seller's (or
    not known yet: 'reprice', nothing written) are priced again and sent again, together."""
    rows = await _batch(
        items,
        single=_settle_single,
        sql=SETTLE_BATCH_SQL,
        key=lambda settlement: settlement.request_id,
        params=lambda batch: (
            orjson.dumps([settle_fields(s) for s in batch]).decode(),
            settings.DRAGONFLY_DEFAULT_FEE_BPS,
        ),
    )
    again = [
        n
        for n, (settlement, row) in enumerate(zip(items, rows, strict=True))
        if isinstance(row, tuple) and settle_repriced(settlement, row)
    ]
    if again:
        if attempt >= REPRICE_ATTEMPTS:
            refused = BillingError("The seller's fee kept changing while the request settled.")
            return [refused if n in again else row for n, row in enumerate(rows)]
        retried = await _settle_batch([items[n] for n in again], attempt=attempt + 1)
        for n, row in zip(again, retried, strict=True):
            rows[n] = row
    return rows


async def request_settle(*, settlement: Settlement) -> SettleResult:
    """billing.services.request_settle, on the event loop (idempotent on request_id; batched with
    concurrent settlements)."""
    settlement_validate(settlement)
    _, settles, _ = _loop_batchers()
    row = await settles.submit(settlement)
    return settle_result(settlement, row)
