"""Calling the chosen listings in order until one serves: failover before content, health reports.

A candidate is abandoned, reported to market health and the next one tried, on any retryable
UpstreamError before the first content reaches the buyer, up to DRAGONFLY_MAX_ATTEMPTS listings;
one at its capacity (capacity.py) is skipped. A permanent one (the provider calls the request
invalid: buyer_fault in upstream/statuses.py, MiniMax's 2013) is the buyer's fault: a 400, no other listing tried, and
no listing's health counts it. Successes are reported with TTFT (first stream event,
or the response head of a plain call) and tokens/second (stream chunks after the first over their
time; a plain call's completion tokens over its whole time).
Only the listing that served is charged. Seller keys are decrypted at call time and kept in this
process's memory for a minute at most (never in Redis, logs or errors).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable

from django.conf import settings

from gateway import (
    answer_cost,
    capacity,
    dead_keys,
    health_reports,
    metering,
    route_trace,
    routing,
)
from gateway.call import Call
from gateway.db import DatabaseUnavailable, db_call
from gateway.errors import NO_ELIGIBLE_SELLER, GatewayError
from gateway.metering import Meter
from gateway.relay import first_event, relay
from gateway.request import ChatRequest, SpeechRequest
from gateway.response import SSE
from gateway.runtime import caches  # upstream_keys: listing id -> (fresh until, seller key)
from gateway.upstream import minimax, openai, statuses
from gateway.upstream.base import UpstreamError
from market.route_candidates import RouteCandidate
from observability.metrics import UPSTREAM_ATTEMPTS, labelled

logger = logging.getLogger("gateway")

Attempt = Callable[[Call, RouteCandidate], Awaitable[UpstreamError | None]]

_KEY_TTL = 60.0


async def upstream_key(listing_id: int) -> str:
    hit = caches.upstream_keys.get(listing_id)
    if hit is not None and hit[0] > time.monotonic():
        return hit[1]
    from market.selectors import listing_upstream_key

    try:
        key = await db_call(listing_upstream_key, listing_id=listing_id, idempotent=True)
    except DatabaseUnavailable:
        raise  # not the listing's fault: a 503, no other listing tried, no health cost
    except Exception as exc:
        logger.error("listing #%s: seller key unavailable (%s)", listing_id, type(exc).__name__)
        raise UpstreamError("seller key unavailable") from None
    caches.upstream_keys[listing_id] = (time.monotonic() + _KEY_TTL, key)
    return key


def report(candidate, *, ok: bool, status: int | None, ttft_ms=None, tps=None, error="") -> None:
    """Passive health signal, off the response path (health_reports.py)."""
    labelled(UPSTREAM_ATTEMPTS, candidate.provider_slug, "ok" if ok else "failed").inc()
    if ok:
        health_reports.success(candidate.listing_id, ttft_ms=ttft_ms, tps=tps)
        return
    if statuses.key_rejected(status):
        # Not tried again by this process (dead_keys.py); the seller may re-key: decrypt afresh.
        dead_keys.mark(candidate.listing_id)
        caches.upstream_keys.pop(candidate.listing_id, None)
    health_reports.failure(candidate.listing_id, status=status, error=error)


def _exhausted(
    call: Call, failure: UpstreamError | None, tried: int, full: set[int], dead: int
) -> GatewayError:
    if failure is not None and not failure.retryable:
        return GatewayError(
            400,
            f"The seller's provider refused the request as invalid ({failure.reason}); "
            "check its parameters.",
        )
    if tried == 0:  # every candidate filled up, or had its key rejected, since ranking
        route, model_id = call.route, call.route.model["model_id"]
        try:  # the 503 counting every listing offering the model, as ranking does
            routing.rank_model(route.table, model_id, route.prefs, full=full)
        except GatewayError as unavailable:
            return unavailable
        # Listings past DRAGONFLY_MAX_ATTEMPTS are still eligible: this request did not get to them.
        extra = routing.unavailable_extra({"capacity": len(full), "suspended": dead}, model_id)
        return GatewayError(503, NO_ELIGIBLE_SELLER, extra=extra)
    last = f" (last: {failure.reason})" if failure else ""
    return GatewayError(
        502,
        f"The upstream provider failed on all {tried} seller channel(s) tried{last}.",
    )


async def failover(call: Call, attempt: Attempt) -> None:
    """Try the call's candidates in order until `attempt(call, candidate)` serves (returns None);
    each holds a capacity slot while it runs (the first's was taken with the hold). A failure
    before the buyer got anything is reported and, if retryable, the next candidate is tried.
    A listing whose key this process saw rejected since the request was ranked is not tried."""
    attempts, meter = call.attempts, call.meter
    assert attempts is not None
    failure: UpstreamError | None = None
    tried = dead = 0
    full: set[int] = set()
    meter.cover(call.held_nusd, call.lease_id)  # the answer's cost is capped at it, as settled
    for index, candidate in enumerate(attempts.candidates):
        if dead_keys.marked(candidate.listing_id):
            if index == 0:
                attempts.slot.release()
            dead += 1
            meter.trace.passed_over(candidate, route_trace.KEY_SUSPENDED)
            continue
        slot = attempts.slot if index == 0 else await capacity.take(candidate)
        if slot is None:
            full.add(candidate.listing_id)
            meter.trace.passed_over(candidate, route_trace.AT_CAPACITY)
            continue
        tried += 1
        meter.attempt_start()
        try:
            failure = await attempt(call, candidate)
        finally:
            slot.release()
        if failure is None:
            return
        meter.attempt_failed()
        meter.trace.passed_over(candidate, route_trace.reason(failure))
        if not failure.retryable:  # the buyer's request is at fault: no listing's health counts it
            labelled(UPSTREAM_ATTEMPTS, candidate.provider_slug, "invalid_request").inc()
            break
        if statuses.key_rejected(failure.status) and dead_keys.marked(candidate.listing_id):
            # A request in flight with this one saw the key rejected first: that one's 502 is the
            # process's one; this request counts the listing as suspended, as if ranked after it.
            tried, dead = tried - 1, dead + 1
        report(candidate, ok=False, status=failure.status, error=failure.reason)
    raise _exhausted(call, failure, tried, full, dead)


async def serve_chat(call: Call) -> None:
    """Serve a chat request from the first candidate that answers, in the endpoint's dialect."""
    await failover(call, _chat_attempt)


async def serve_speech(call: Call) -> None:
    """Serve a speech request from the first candidate that answers."""
    await failover(call, _speech_attempt)


async def _chat_attempt(call: Call, candidate: RouteCandidate) -> UpstreamError | None:
    """Call one listing; None once it has served. Every upstream is told the meter's output cap,
    the output per choice the hold covers."""
    out, meter, dialect = call.out, call.meter, call.endpoint.dialect
    chat = call.request
    assert isinstance(chat, ChatRequest) and dialect is not None
    events: AsyncGenerator[list[bytes], None] | None = None
    fmt = dialect.stream(chat, candidate.model_id, meter.prompt_estimate)
    try:
        key = await upstream_key(candidate.listing_id)
        body = openai.chat_body(
            chat.payload,
            upstream_model=candidate.upstream_model,
            upstream_params=candidate.upstream_params,
            stream=chat.stream,
            max_tokens=meter.output_cap,
        )
        response = await openai.chat_open(candidate.base_url, key=key, body=body)
        meter.accept(candidate)
        if chat.stream:
            events = openai.events(response)
            async with asyncio.timeout(settings.DRAGONFLY_UPSTREAM_FIRST_TOKEN_TIMEOUT):
                first, ended = await first_event(events, fmt=fmt, meter=meter)
        else:
            meter.first_content()  # the response head: TTFT of a plain call
            data = await openai.read_json(response)
            answer = dialect.completion(data, chat, candidate.model_id)
    except TimeoutError:
        failure: UpstreamError | None = UpstreamError("no first token in time")
    except UpstreamError as exc:
        failure = exc
    except asyncio.CancelledError:  # the buyer left before anything was sent
        if events is not None:
            await asyncio.shield(events.aclose())
        raise
    else:
        failure = None
    if failure is not None:
        if events is not None:
            await events.aclose()
        return failure

    # Committed: this listing serves, its headers go out with the first byte.
    await call.commit(candidate)
    extra = call.route.diagnostics(candidate)
    if events is not None:
        await out.start(200, SSE, extra)
        try:
            cut = await relay(out, events, first, ended=ended, fmt=fmt, meter=meter)
        finally:
            await events.aclose()
        _report_streamed(candidate, meter, cut)
        return None
    _meter_completion(data, meter)
    elapsed = time.monotonic() - meter.attempt_started
    debit = meter.debit_nusd()  # the whole body is known before its headers: X-DF-Cost too
    answer = dialect.priced(answer, meter, debit)
    await out.json(200, answer, [*extra, answer_cost.header(debit)])
    tps = meter.completion_tokens / elapsed if meter.completion_tokens and elapsed > 0 else None
    report(candidate, ok=True, status=200, ttft_ms=meter.ttft_ms, tps=tps)
    return None


async def _speech_attempt(call: Call, candidate: RouteCandidate) -> UpstreamError | None:
    speech, meter = call.request, call.meter
    assert isinstance(speech, SpeechRequest)
    try:
        key = await upstream_key(candidate.listing_id)
        result = await minimax.speech(
            candidate.base_url, key=key, request=speech, upstream_model=candidate.upstream_model
        )
    except UpstreamError as exc:
        return exc
    await call.commit(candidate)
    meter.first_content()
    meter.usage(result.characters, 0)
    meter.finish()
    extra = [*call.route.diagnostics(candidate), answer_cost.header(meter.debit_nusd())]
    await call.out.complete(200, speech.content_type.encode(), result.audio, extra)
    report(candidate, ok=True, status=200, ttft_ms=meter.ttft_ms)
    return None


def _meter_completion(data: dict, meter: Meter) -> None:
    """Usage of a plain completion: the upstream's, else 4 characters per token of its text."""
    usage = data.get("usage")
    if isinstance(usage, dict):
        meter.usage(usage.get("prompt_tokens"), usage.get("completion_tokens"))
    else:
        chars = sum(
            metering.message_chars(choice.get("message") or {})
            for choice in data["choices"]
            if isinstance(choice, dict)
        )
        meter.usage(None, metering.tokens_from_chars(chars) if chars else 0)
    meter.finish()


def _report_streamed(candidate, meter: Meter, cut: UpstreamError | None) -> None:
    if cut is not None:
        report(candidate, ok=False, status=cut.status, error=cut.reason)
        return
    tps = None
    if meter.first_content_at is not None and meter.content_chunks > 1:
        elapsed = time.monotonic() - meter.first_content_at
        if elapsed > 0:
            tps = (meter.content_chunks - 1) / elapsed
    report(candidate, ok=True, status=200, ttft_ms=meter.ttft_ms, tps=tps)
