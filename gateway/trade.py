"""The pipeline every billed /v1 request takes, in one function (`run`), and its steps.

`run` reads top to bottom as the request goes: authenticate, parse, take an admission turn, route
and size, rate-limit, rank, reserve against the key's spend limit, take a capacity slot and the
hold together, end the turn, serve (the endpoint's function, proxy.py), settle, give the slot
back, correct the rate limits to what was used. A sample of requests is timed at each of these
steps (`watch`, gateway/stages.py). Each resource opens and closes in `run`'s own
`with`/`finally` blocks, but for what waits on the settlement: `run` does not wait for it to
land (`settle`), and its task closes the spend reservation and the stream's checkpoint. The
session pin is written by `Call.commit` when a listing serves.
"""

from __future__ import annotations

import asyncio
import functools
import logging

from django.conf import settings

from billing.settlement_data import Settlement
from gateway import (
    admission,
    auth,
    background,
    billing_calls,
    capacity,
    catalogue,
    checkpoints,
    limits,
    max_cost,
    metering,
    model_aliases,
    provider_field,
    request,
    route_outcomes,
    routing,
    spend,
    stages,
)
from gateway.call import Attempts, Call, Endpoint, Route
from gateway.db import DatabaseUnavailable
from gateway.errors import GatewayError, bad_request
from gateway.headers import request_map
from gateway.response import Response

logger = logging.getLogger("gateway")


async def run(scope, receive, out: Response, endpoint: Endpoint) -> None:
    """Serve one billed request (chat, Messages, speech, embeddings, rerank) from its body to its
    settlement."""
    watch = stages.stopwatch()
    headers = request_map(scope)
    key = await auth.authenticate(headers, scope)
    watch.lap("auth")
    data = request.parse_json_object(await request.read_body(scope, receive))
    provider = provider_field.take(data)  # OpenRouter's routing object: never sent upstream
    body = endpoint.parse(data)
    watch.lap("body")
    async with admission.Turn() as turn:  # given back by turn.end() below, or on any exit
        watch.lap("turn")
        routed = await route(
            headers, key, body.model, modality=endpoint.modality, provider=provider
        )
        out.add(list(routed.alias_headers))
        call = Call(out, key, endpoint, body, routed, endpoint.size(body, routed.model))
        call.meter.trace.resolved_from(body.model, routed)
        watch.lap("route")
        call.verdict = await rate_limit(out, key, call.meter.units_estimate)
        watch.lap("rate_limit")
        try:
            await rank(call)
            watch.lap("rank")
            with spend.reserve(key, call.hold_nusd) as call.reservation:
                await slot_and_hold(call)
                watch.lap("slot_and_hold")
                assert call.attempts is not None
                try:
                    turn.end()  # ready for the upstream call: the next request in line may start
                    out.watch_disconnect(receive)
                    checkpoints.track(out.request_id, key, call.meter, streamed=call.streamed)
                    try:
                        await endpoint.serve(call)
                    finally:
                        watch.served(call.meter.first_content_at)
                        settle(call, watch)
                finally:
                    call.attempts.slot.release()  # a no-op once failover has given it back
        finally:
            route_outcomes.count(call)
            await limits.correct(call.verdict, call.meter.units_used)


# The endpoint that serves each modality, for the 400 of a model sent to the wrong one.
MODALITY_PATHS = {modality: " or ".join(paths) for modality, paths in catalogue.ENDPOINTS.items()}


async def route(
    headers,
    key: dict,
    requested: str,
    *,
    modality: str,
    provider: provider_field.ProviderField | None = None,
) -> Route:
    """The buyer's constraints (headers, the body's `provider` object, the profile) and session,
    and the catalogue model (400 if unknown or of the wrong modality)."""
    prefs = routing.preferences(headers, key["profile"], body=provider)
    session = routing.session_id(headers)
    table = await routing.table()
    model, how = routing.resolve_model(
        requested, key["profile"], table.catalogue, modality=modality
    )
    kind = model["modality"]
    if kind != modality:
        shown = f"'{model['model_id']}'"
        if how is not None:
            shown = f"'{requested}' (an alias of {shown})"
        article = "an" if kind[0] in "aeiou" else "a"
        raise bad_request(
            f"{shown} is {article} {kind} model: send it to {MODALITY_PATHS[kind]} "
            "(GET /v1/models lists each model's endpoint)."
        )
    alias = () if how is None else tuple(model_aliases.header(requested, model["model_id"], how))
    return Route(prefs, session, table, model, alias, alias_source=how)


async def rate_limit(out: Response, key: dict, tokens: int) -> limits.Verdict:
    """Count the request and its estimated tokens (429 past a limit); the headers report it."""
    verdict = await limits.acquire(limits.scopes_for(key), tokens)
    out.add(limits.headers(verdict))
    return verdict


async def rank(call: Call) -> None:
    """Eligible listings, best first, the session's pin first (503 when none is eligible), those
    the request may try (allow_fallbacks, then X-Max-Cost, which may lower the output cap: 400
    when nothing fits), and the worst case over them: what the key's spend limit counts while the
    request is in flight, and the hold. A hard TTFT admits only listings measured within it, so it
    is the promise every one of them serves under (the SLA refund)."""
    route_, prefs = call.route, call.route.prefs
    call.meter.promise_ttft(prefs.hard_max_ttft_ms)
    ranked = routing.rank_model(
        route_.table, route_.model["model_id"], prefs, why_removed=call.removed, keys=call.keys
    )
    ranked, call.pin = await routing.stick(
        ranked, user_id=call.key["user_id"], session=route_.session
    )
    ranked, set_aside = routing.fallbacks(ranked, prefs)
    call.dropped = dict.fromkeys((c.listing_id for c in set_aside), "allow_fallbacks")
    if prefs.max_cost_nusd is not None:
        fitted = max_cost.fit(ranked, call.meter, prefs.max_cost_nusd)
        if fitted.output_cap is not None:
            call.meter.fit_output_cap(fitted.output_cap)
        call.dropped.update(dict.fromkeys((c.listing_id for c in fitted.set_aside), "max_cost"))
        ranked = fitted.kept
    call.ranked = ranked
    call.hold_nusd = worst_case(call.ranked, call.meter)


def worst_case(candidates, meter: metering.Meter) -> int:
    return max(metering.candidate_worst_case_nusd(c, meter) for c in candidates)


async def slot_and_hold(call: Call) -> None:
    """A capacity slot and the hold, asked for at once (one round trip less before the upstream
    call). The hold covers every eligible listing, whichever capacity picks; if the wallet cannot
    cover that, the hold is asked again for exactly the listings this request may try, so nobody
    is refused who could pay for those. Sets `call.attempts`, `call.held_nusd` and
    `call.lease_id`; when this raises, no slot is kept and no hold is left."""
    assert call.ranked is not None
    request_id = call.out.request_id
    slot = capacity.kept(call.ranked)
    if slot is not None:  # both in memory, when a kept slot and a lease's draw cover it
        free = call.hold_nusd <= 0  # nothing to reserve
        lease_id = (
            None
            if free
            else billing_calls.draw(
                request_id=request_id, user_id=call.key["user_id"], amount_nusd=call.hold_nusd
            )
        )
        if free or lease_id is not None:
            call.lease_id = lease_id
            call.attempts, call.held_nusd = _attempts(call, slot, {}), call.hold_nusd
            return
        slot.release()  # kept again, and taken with the hold below
    taking = asyncio.ensure_future(capacity.take_first(call.ranked))
    try:
        await _hold(call, call.hold_nusd)
    except DatabaseUnavailable:
        taking.add_done_callback(_release_taken)  # a 503: no smaller hold would fare better
        raise
    except GatewayError as refused:
        slot, full = await taking
        attempts = _attempts(call, slot, full)
        exact = worst_case(attempts.candidates, call.meter)
        if exact >= call.hold_nusd:
            attempts.slot.release()
            raise refused from None
        try:
            await _hold(call, exact)
        except BaseException:
            attempts.slot.release()
            raise
        call.attempts, call.held_nusd = attempts, exact
        return
    except BaseException:
        taking.add_done_callback(_release_taken)
        raise
    slot, full = await taking
    if slot is None:
        await billing_calls.void(request_id=request_id, reason="every listing at capacity")
    call.attempts, call.held_nusd = _attempts(call, slot, full), call.hold_nusd


async def _hold(call: Call, amount_nusd: int) -> None:
    """billing_calls.hold (sets `call.lease_id`); a request cancelled while its hold is being
    placed voids it once placed."""
    request_id = call.out.request_id
    placing = asyncio.ensure_future(
        billing_calls.hold(
            request_id=request_id, user_id=call.key["user_id"], amount_nusd=amount_nusd
        )
    )
    try:
        call.lease_id = await asyncio.shield(placing)
    except asyncio.CancelledError:
        placing.add_done_callback(functools.partial(_void_placed, request_id))
        raise


def _void_placed(request_id: str, placing: asyncio.Future) -> None:
    if not placing.cancelled() and placing.exception() is None:
        background.spawn(billing_calls.void(request_id=request_id, reason="request cancelled"))


def _attempts(call: Call, slot: capacity.Slot | None, full: dict[int, str]) -> Attempts:
    """From the slot's listing on, the ones not found full; 503 when every one is at a cap."""
    assert call.ranked is not None
    call.dropped.update(full)
    if slot is None:  # every eligible listing is at a cap: the 503 counts them with the rest
        route_ = call.route
        routing.rank_model(
            route_.table,
            route_.model["model_id"],
            route_.prefs,
            full=full.keys(),
            dropped=call.dropped,
            why_removed=call.removed,
        )
        raise AssertionError("rank() raises when nothing is eligible")
    start = call.ranked.index(slot.candidate)
    rest = [c for c in call.ranked[start + 1 :] if c.listing_id not in full]
    return Attempts([slot.candidate, *rest][: settings.DRAGONFLY_MAX_ATTEMPTS], slot)


def _release_taken(taking: asyncio.Future) -> None:
    if not taking.cancelled() and taking.exception() is None:
        slot, _ = taking.result()
        if slot is not None:
            slot.release()


def settle(call: Call, watch: stages.Watch) -> asyncio.Task[int] | None:
    """Exactly once per request: charge the listing that served, or release the hold. A buyer who
    left (or a server stopped) after an upstream accepted the request but before its first token
    pays the prompt (billing policy 4).

    What is billed is decided here, as the answer ends; the settlement then lands in a task of
    its own (`_land`), which holds only what it needs, so the request lets go of its body, its
    answer and its connection at once. The key's spend reservation, the stream's checkpoint
    and the settle stage wait for it there. The task returns what the buyer was debited
    (never more than the hold)."""
    out, meter, reservation = call.out, call.meter, call.reservation
    assert reservation is not None
    reservation.settling = True
    admission.settling()
    candidate = meter.candidate
    if candidate is None and (out.disconnected or asyncio.current_task().cancelling()):  # type: ignore[union-attr]
        candidate = meter.accepted
    try:
        settlement = None  # no listing served: the hold is voided
        if candidate is not None:
            outcome = meter.outcome
            if not out.finished and (out.disconnected or outcome == "completed"):
                # The buyer's connection ended before the answer did: they hung up, or this
                # server was stopped mid-answer (Daphne cancels what is in flight). Billed as
                # delivered.
                outcome = "client_disconnected"
            settlement = meter.settlement(
                out.request_id, call.key, candidate, outcome=outcome, streamed=call.streamed
            )
    except Exception:
        _failed(out.request_id)
        _landed(out.request_id, reservation, call.held_nusd)
        return None
    return background.spawn(_land(out.request_id, settlement, call.held_nusd, reservation, watch))


async def _land(
    request_id: str,
    settlement: Settlement | None,
    held_nusd: int,
    reservation: spend.Reservation,
    watch: stages.Watch,
) -> int:
    debit = held_nusd  # counted as spent until the reaper (or the retry) says otherwise
    try:
        if settlement is None:
            await billing_calls.void(request_id=request_id, reason="no listing served")
            debit = 0
        else:
            result = await billing_calls.settle(settlement)
            if result is not None:  # None: the database is unreachable, retried in the background
                debit = 0 if result.already_settled else min(result.cost_nusd, held_nusd)
    except Exception:
        _failed(request_id)
    finally:
        _landed(request_id, reservation, debit)
    watch.lap("settle")
    watch.observe()
    return debit


def _failed(request_id: str) -> None:
    logger.exception("settlement of %s failed; the hold stays for the reaper", request_id)


def _landed(request_id: str, reservation: spend.Reservation, debit_nusd: int) -> None:
    """What waited on the settlement: the stream's checkpoint row may go, the key's spend counts
    the debit instead of the hold, and the settlement leaves the process's backlog."""
    admission.landed()
    checkpoints.untrack(request_id)
    reservation.close(debit_nusd)
