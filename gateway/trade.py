"""The steps every billed /v1 request shares, in order: route (catalogue model, constraints,
session), rate limit, then trade: the listings it may try with a capacity slot on the first and
the hold of the worst case (asked for together), serve through the caller's function, settle
exactly once."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from django.conf import settings

from gateway import admission, capacity, checkpoints, limits, metering, money, routing, spend
from gateway.db import DatabaseUnavailable
from gateway.errors import GatewayError, bad_request
from gateway.headers import diagnostics
from gateway.relay import Meter
from gateway.response import Response

logger = logging.getLogger("gateway")


@dataclass(frozen=True, slots=True)
class Route:
    """Where a request may go: the buyer's constraints, session and the resolved catalogue model."""

    prefs: routing.Preferences
    session: str | None
    table: routing.Table
    model: dict


_WRONG_MODALITY = {
    "chat": "'{id}' is a {modality} model: use /v1/audio/speech.",
    "speech": "'{id}' is not a speech model: /v1/audio/speech needs one such as "
    "minimax/speech-02-hd.",
}


async def route(headers, key: dict, requested: str, *, modality: str) -> Route:
    prefs = routing.preferences(headers, key["profile"])
    session = routing.session_id(headers)
    table = await routing.table()
    model = routing.resolve_model(requested, key["profile"], table.catalogue)
    if model["modality"] != modality:
        raise bad_request(
            _WRONG_MODALITY[modality].format(id=model["model_id"], modality=model["modality"])
        )
    return Route(prefs, session, table, model)


async def rate_limit(out: Response, key: dict, tokens: int) -> limits.Verdict:
    verdict = await limits.acquire(limits.scopes_for(key), tokens)
    out.add(limits.headers(verdict))
    return verdict


@dataclass(slots=True)
class Attempts:
    """The listings this request may try, best first; the first already holds a capacity slot."""

    candidates: list
    slot: capacity.Slot


async def _ranked(route: Route, key: dict) -> list:
    """Eligible listings, best first, the session's pin first (503 when none is eligible)."""
    candidates = route.table.candidates.get(route.model["model_id"], [])
    ranked = routing.rank(candidates, route.prefs)
    return await routing.stick(ranked, user_id=key["user_id"], session=route.session)


def _attempts(route: Route, ranked: list, slot: capacity.Slot | None, full: set[int]) -> Attempts:
    """From the slot's listing on, the ones not found full; 503 when every one is at a cap."""
    if slot is None:  # every eligible listing is at a cap: the 503 counts them with the rest
        routing.rank(
            route.table.candidates.get(route.model["model_id"], []), route.prefs, full=full
        )
        raise AssertionError("rank() raises when nothing is eligible")
    start = ranked.index(slot.candidate)
    rest = [c for c in ranked[start + 1 :] if c.listing_id not in full]
    return Attempts([slot.candidate, *rest][: settings.DRAGONFLY_MAX_ATTEMPTS], slot)


def _worst_case(candidates, meter: Meter) -> int:
    return max(
        metering.worst_case_nusd(
            prompt_tokens=meter.prompt_bound,
            output_tokens=meter.output_allowance,
            ask_input_nusd=c.ask_input_nusd,
            ask_output_nusd=c.ask_output_nusd,
        )
        for c in candidates
    )


async def _slot_and_hold(
    out: Response, key: dict, route: Route, ranked: list, meter: Meter, hold_nusd: int
):
    """A capacity slot and the hold, asked for at once (one round trip less before the upstream
    call). The hold covers every eligible listing, whichever capacity picks; if the wallet cannot
    cover that, the hold is asked again for exactly the listings this request may try, so nobody
    is refused who could pay for those. Returns (attempts, the amount held)."""
    taking = asyncio.ensure_future(capacity.take_first(ranked))
    try:
        await money.hold(request_id=out.request_id, user_id=key["user_id"], amount_nusd=hold_nusd)
    except DatabaseUnavailable:
        taking.add_done_callback(_release_taken)  # a 503: no smaller hold would fare better
        raise
    except GatewayError as refused:
        slot, full = await taking
        attempts = _attempts(route, ranked, slot, full)
        exact = _worst_case(attempts.candidates, meter)
        if exact >= hold_nusd:
            attempts.slot.release()
            raise refused from None
        try:
            await money.hold(request_id=out.request_id, user_id=key["user_id"], amount_nusd=exact)
        except BaseException:
            attempts.slot.release()
            raise
        return attempts, exact
    except BaseException:
        taking.add_done_callback(_release_taken)
        raise
    slot, full = await taking
    if slot is None:
        await money.void(request_id=out.request_id, reason="every listing at capacity")
    return _attempts(route, ranked, slot, full), hold_nusd


def _release_taken(taking: asyncio.Future) -> None:
    if not taking.cancelled() and taking.exception() is None:
        slot, _ = taking.result()
        if slot is not None:
            slot.release()


async def execute(
    receive,
    out: Response,
    turn: admission.Turn,
    key: dict,
    route: Route,
    verdict: limits.Verdict,
    meter: Meter,
    *,
    streamed,
    serve,
) -> Meter:
    """Within the key's spend limit, hold the worst case of the listings it may try and take a
    capacity slot, end the request's admission turn, serve through `serve(meter, attempts, pin)`,
    then settle exactly once. The meter's estimates size the hold; it returns filled in. However
    this ends, the first listing's capacity slot is given back (a no-op once failover has) and the
    tokens/min count keeps only what was used (nothing unless a listing served)."""
    try:
        return await _trade(receive, out, turn, key, route, meter, streamed=streamed, serve=serve)
    finally:
        await limits.correct(verdict, meter.units_used)


async def _trade(
    receive,
    out: Response,
    turn: admission.Turn,
    key: dict,
    route: Route,
    meter: Meter,
    *,
    streamed,
    serve,
):
    ranked = await _ranked(route, key)
    hold_nusd = _worst_case(ranked, meter)

    async def pin(candidate) -> None:  # before the first byte, so the next request sees it
        await routing.pin(
            user_id=key["user_id"], session=route.session, listing_id=candidate.listing_id
        )

    with spend.reserve(key, hold_nusd) as reservation:
        attempts, held = await _slot_and_hold(out, key, route, ranked, meter, hold_nusd)
        turn.end()  # ready for the upstream call: the next request in line may start
        try:
            out.watch_disconnect(receive)
            with checkpoints.tracked(out.request_id, key, meter, streamed=streamed):
                try:
                    await serve(meter, attempts, pin)
                finally:
                    reservation.debit_nusd = await _settle(out, key, meter, held, streamed=streamed)
        finally:
            attempts.slot.release()
    if meter.candidate is not None:
        await pin(meter.candidate)
    return meter


def diagnostics_for(table: routing.Table):
    def build(candidate) -> list[tuple[bytes, bytes]]:
        fee_profile_id = table.fees.get(candidate.seller_id, (None, 0))[0]
        return diagnostics(candidate, fee_profile_id=fee_profile_id)

    return build


async def _settle(out: Response, key: dict, meter: Meter, hold_nusd: int, *, streamed: bool) -> int:
    """Exactly once per request: charge the listing that served, or release the hold. Returns what
    the buyer was debited (never more than the hold). A buyer who left (or a server stopped) after
    an upstream accepted the request but before its first token pays the prompt (billing policy 4)."""
    candidate = meter.candidate
    if candidate is None and (out.disconnected or asyncio.current_task().cancelling()):  # type: ignore[union-attr]
        candidate = meter.accepted
    try:
        if candidate is None:
            await money.void(request_id=out.request_id, reason="no listing served")
            return 0
        outcome = meter.outcome
        if not out.finished and (out.disconnected or outcome == "completed"):
            # The buyer's connection ended before the answer did: they hung up, or this server
            # was stopped mid-answer (Daphne cancels what is in flight). Billed as delivered.
            outcome = "client_disconnected"
        result = await money.settle(
            meter.settlement(out.request_id, key, candidate, outcome=outcome, streamed=streamed)
        )
    except asyncio.CancelledError:
        raise  # the shielded settlement itself runs on to its end
    except Exception:
        logger.exception("settlement of %s failed; the hold stays for the reaper", out.request_id)
        return hold_nusd  # count it as spent until the reaper says otherwise
    if result is None:  # the database is unreachable: money.settle retries it in the background
        return hold_nusd  # count it as spent until it lands
    return 0 if result.already_settled else min(result.cost_nusd, hold_nusd)
