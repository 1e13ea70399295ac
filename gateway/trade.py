"""The steps every billed /v1 request shares, in order: route (catalogue model, constraints,
session), rate limit, the listings it may try (with the first capacity slot), then trade: hold the
worst case, serve through the caller's function, settle exactly once."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from django.conf import settings

from billing.settlement import Settlement
from gateway import capacity, limits, metering, money, routing, spend
from gateway.errors import bad_request
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


async def attempts_for(route: Route, key: dict) -> Attempts:
    """Eligible listings, session pin first, a slot taken on the first with room (one script)."""
    candidates = route.table.candidates.get(route.model["model_id"], [])
    ranked = routing.rank(candidates, route.prefs)
    stuck = await routing.stick(ranked, user_id=key["user_id"], session=route.session)
    slot, full = await capacity.take_first(stuck)
    if slot is None:  # every eligible listing is at a cap: the 503 counts them with the rest
        routing.rank(candidates, route.prefs, full=full)
        raise AssertionError("rank() raises when nothing is eligible")
    start = stuck.index(slot.candidate)
    rest = [c for c in stuck[start + 1 :] if c.listing_id not in full]
    return Attempts([slot.candidate, *rest][: settings.DRAGONFLY_MAX_ATTEMPTS], slot)


async def execute(
    receive,
    out: Response,
    key: dict,
    route: Route,
    attempts: Attempts,
    meter: Meter,
    *,
    streamed,
    serve,
) -> Meter:
    """Within the key's spend limit, hold the worst case of the listings it may try, serve, then
    settle exactly once. The meter's estimates size the hold; it returns filled in. The first
    listing's capacity slot is given back however this ends (a no-op once failover has)."""
    try:
        hold_nusd = max(
            metering.worst_case_nusd(
                prompt_tokens=meter.prompt_estimate,
                output_tokens=meter.output_allowance,
                ask_input_nusd=c.ask_input_nusd,
                ask_output_nusd=c.ask_output_nusd,
            )
            for c in attempts.candidates
        )

        async def pin(candidate) -> None:  # before the first byte, so the next request sees it
            await routing.pin(
                user_id=key["user_id"], session=route.session, listing_id=candidate.listing_id
            )

        with spend.reserve(key, hold_nusd) as reservation:
            await money.hold(
                request_id=out.request_id, user_id=key["user_id"], amount_nusd=hold_nusd
            )
            out.watch_disconnect(receive)
            try:
                await serve(meter, pin)
            finally:
                reservation.debit_nusd = await _settle(
                    out, key, meter, hold_nusd, streamed=streamed
                )
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
    the buyer was debited (never more than the hold)."""
    candidate = meter.candidate
    try:
        if candidate is None:
            await money.void(request_id=out.request_id, reason="no listing served")
            return 0
        outcome = meter.outcome
        if out.disconnected and not out.finished:
            outcome = "client_disconnected"
        result = await money.settle(
            Settlement(
                request_id=out.request_id,
                buyer_id=key["user_id"],
                access_key_id=key["key_id"],
                listing_id=candidate.listing_id,
                seller_id=candidate.seller_id,
                model_id=candidate.model_id,
                upstream_model=candidate.upstream_model,
                price_unit=candidate.price_unit,
                ask_input_nusd=candidate.ask_input_nusd,
                ask_output_nusd=candidate.ask_output_nusd,
                input_units=meter.prompt_tokens_billed,
                output_units=meter.output_units,
                ttft_ms=meter.ttft_ms,
                duration_ms=meter.duration_ms,
                streamed=streamed,
                outcome=outcome,
            )
        )
    except asyncio.CancelledError:
        raise  # the shielded settlement itself runs on to its end
    except Exception:
        logger.exception("settlement failed; the hold stays for the reaper")
        return hold_nusd  # count it as spent until the reaper says otherwise
    return 0 if result.already_settled else min(result.cost_nusd, hold_nusd)
