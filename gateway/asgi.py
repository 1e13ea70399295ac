"""The /v1 data plane: a lean ASGI application, routed to before Django. Reads as the pipeline.

Each step is one module: dialects (OpenAI or Anthropic wire shape in and out), request (body and
validation), auth (access key), routing (table, constraints, ranking, stickiness), capacity
(listing caps), limits (Redis rate limits), spend (the key's spend limit), money (hold and
settlement), proxy/relay/upstream (calling listings with failover, streaming), headers and errors.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from dataclasses import dataclass
from urllib.parse import parse_qs

from django.conf import settings

from billing.services.fastpath_async import pools_close
from billing.settlement import Settlement
from dragonfly.logs import request_id_var
from dragonfly.metrics import GATEWAY_LATENCY, GATEWAY_REQUESTS
from gateway import (
    auth,
    background,
    capacity,
    catalogue,
    dialects,
    health_reports,
    limits,
    metering,
    money,
    proxy,
    request,
    routing,
    spend,
)
from gateway.anthropic import AnthropicRequestError, count_tokens_response
from gateway.errors import GatewayError, bad_request
from gateway.headers import diagnostics, request_map
from gateway.relay import Meter
from gateway.response import Response
from gateway.upstream.base import close_sessions

logger = logging.getLogger("gateway")


async def chat_completions(scope, receive, out: Response) -> None:
    await _chat(scope, receive, out, dialects.OPENAI)


async def messages(scope, receive, out: Response) -> None:
    await _chat(scope, receive, out, dialects.ANTHROPIC)


async def _chat(scope, receive, out: Response, dialect: dialects.Dialect) -> None:
    headers = request_map(scope)
    key = await auth.authenticate(headers)
    chat = dialect.parse(await request.read_body(scope, receive))
    route = await _route(headers, key, chat.model, modality="chat")
    prompt_tokens = metering.tokens_from_chars(chat.prompt_chars)
    output_tokens = metering.output_allowance(
        chat.max_tokens, route.model["context_tokens"], prompt_tokens
    )
    verdict = await _rate_limit(out, key, prompt_tokens + output_tokens)
    attempts = await _attempts(route, key)
    meter = await _trade(
        receive,
        out,
        key,
        route,
        attempts,
        Meter(prompt_estimate=prompt_tokens, output_allowance=output_tokens),
        streamed=chat.stream,
        serve=lambda meter, pin: proxy.serve_chat(
            out, chat, dialect, attempts, meter, _diagnostics(route.table), pin
        ),
    )
    await limits.correct(verdict, meter.prompt_tokens_billed + meter.output_units)


async def audio_speech(scope, receive, out: Response) -> None:
    headers = request_map(scope)
    key = await auth.authenticate(headers)
    speech = request.parse_speech(await request.read_body(scope, receive))
    route = await _route(headers, key, speech.model, modality="speech")
    characters = len(speech.text)
    await _rate_limit(out, key, characters)
    attempts = await _attempts(route, key)
    await _trade(
        receive,
        out,
        key,
        route,
        attempts,
        Meter(prompt_estimate=characters),
        streamed=False,
        serve=lambda meter, pin: proxy.serve_speech(
            out, speech, attempts, meter, _diagnostics(route.table), pin
        ),
    )


async def count_tokens(scope, receive, out: Response) -> None:
    """Anthropic's token estimate: authenticated and counted as a request, never billed."""
    headers = request_map(scope)
    key = await auth.authenticate(headers)
    body = request.parse_json_object(await request.read_body(scope, receive))
    try:
        answer = count_tokens_response(body)
    except AnthropicRequestError as exc:
        raise bad_request(exc.message) from None
    await _route(headers, key, body["model"], modality="chat")
    await _rate_limit(out, key, 0)
    await out.json(200, answer)


# ---------------------------------------------------------------- the shared steps


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


async def _route(headers, key: dict, requested: str, *, modality: str) -> Route:
    prefs = routing.preferences(headers, key["profile"])
    session = routing.session_id(headers)
    table = await routing.table()
    model = routing.resolve_model(requested, key["profile"], table.catalogue)
    if model["modality"] != modality:
        raise bad_request(
            _WRONG_MODALITY[modality].format(id=model["model_id"], modality=model["modality"])
        )
    return Route(prefs, session, table, model)


async def _rate_limit(out: Response, key: dict, tokens: int) -> limits.Verdict:
    verdict = await limits.acquire(limits.scopes_for(key), tokens)
    out.add(limits.headers(verdict))
    return verdict


@dataclass(slots=True)
class Attempts:
    """The listings this request may try, best first; the first already holds a capacity slot."""

    candidates: list
    slot: capacity.Slot


async def _attempts(route: Route, key: dict) -> Attempts:
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


async def _trade(
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


async def models(scope, receive, out: Response, model_id: str | None = None) -> None:
    table = await routing.table()
    if model_id:
        await out.json(200, catalogue.model_detail(table, model_id))
        return
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    include_all = query.get("all", ["false"])[-1].lower() in ("1", "true", "yes")
    await out.json(200, catalogue.model_list(table, include_all=include_all))


def _diagnostics(table: routing.Table):
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


_EXACT = {
    "/v1/chat/completions": ("POST", chat_completions),
    "/v1/messages": ("POST", messages),
    "/v1/messages/count_tokens": ("POST", count_tokens),
    "/v1/audio/speech": ("POST", audio_speech),
    "/v1/models": ("GET", models),
}


def _endpoint(path: str):
    path = path.rstrip("/")
    if path in _EXACT:
        method, handler = _EXACT[path]
        return method, handler, {}
    if path.startswith("/v1/models/"):
        return "GET", models, {"model_id": path[len("/v1/models/") :]}
    return None


def _error_shape(path: str):
    """Anthropic's error body on the Anthropic-shaped paths (including their 404/405), else ours."""
    if path.rstrip("/").startswith("/v1/messages"):
        return dialects.ANTHROPIC.error_body
    return dialects.OPENAI.error_body


async def application(scope, receive, send):
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["type"] != "http":
        return
    request_id = "req_" + secrets.token_hex(12)
    request_id_var.set(request_id)
    out = Response(send, request_id, _error_shape(scope["path"]))
    started = time.monotonic()
    endpoint = _endpoint(scope["path"])
    name = "unknown" if endpoint is None else endpoint[1].__name__
    try:
        if endpoint is None:
            raise GatewayError(
                404, f"Unknown endpoint {scope['path']}: see the API docs for /v1 paths."
            )
        method, handler, kwargs = endpoint
        if scope["method"] != method:
            raise GatewayError(
                405,
                f"{scope['method']} is not allowed on {scope['path']}: use {method}.",
                headers=[(b"allow", method.encode())],
            )
        await handler(scope, receive, out, **kwargs)
    except GatewayError as exc:
        if not out.started:
            await out.error(exc)
    except request.ClientGone:
        pass
    except asyncio.CancelledError:
        if not out.disconnected:
            raise
        asyncio.current_task().uncancel()  # the buyer left; settlement already ran or runs on
    except Exception:
        logger.exception("unhandled error on %s", scope["path"])
        if not out.started:
            await out.error(GatewayError(500, "Internal error; retry with exponential backoff."))
        elif not out.finished:
            await out.body(b"", more=False)
    finally:
        out.stop_watching()
        GATEWAY_REQUESTS.labels(name, str(out.status or 499)).inc()
        GATEWAY_LATENCY.labels(name).observe(time.monotonic() - started)


async def _lifespan(receive, send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await shutdown()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def shutdown() -> None:
    """Stop the refresher, finish background work, close the loop's upstream and database pools."""
    routing.stop()
    await health_reports.stop()
    await background.drain()
    await close_sessions()
    await pools_close()
