"""Active health probes: one cheap upstream request per listing, bounded concurrency, single-flight.

A chat listing is probed with a one-token completion (`max_tokens: 1`) on its cheapest chat model,
which also proves the key has balance; a rerank listing without chat models with a ranking of one
one-word document (a few tokens, also proving the balance: Jina has no free call that checks a
key); any other listing (speech or embeddings only) with GET /models (free): a probe never sends
chat to a listing that does not sell it.
Every listing is probed at most once per DRAGONFLY_PROBE_INTERVAL_SECONDS, however many beat
processes run: the prober takes `SET df:probe:lock:<id> NX EX <interval>` first. Verification
probes (new or re-keyed listings) do not wait for that lock (a new key must be checked now) but
take it, so the next sweep within the interval leaves the listing alone.

The request is built and its answer read by the gateway's upstream adapter (gateway/upstream/),
so a probe and a served request ask the same way and a status counts the same for both
(gateway/upstream/statuses.py); the probe brings its own session with its own timeouts.

Decrypted keys live only in ProbeTarget (repr hides them) for the duration of the HTTP call.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from django.conf import settings

from gateway.upstream import jina, openai, statuses
from gateway.upstream.base import UpstreamError
from gateway.upstream.client import Client
from live.nudges import listing_nudge
from market import crypto, health, health_record, selectors, services
from market.models import HealthSource, Listing, ListingStatus, Modality
from market.upstream_batch import gather_bounded, run_batch
from redis_clients.clients import get_redis

logger = logging.getLogger(__name__)

CONCURRENCY = 16
TIMEOUT_S = 15.0


@dataclass(frozen=True, slots=True)
class ProbeTarget:
    listing_id: int
    status: str
    base_url: str
    body: bytes | None  # a one-token chat completion or a one-document ranking; None: GET /models
    key_ciphertext: bytes
    upstream_key: str = field(repr=False)
    rerank: bool = False  # `body` is a ranking for {base}/rerank


@dataclass(frozen=True, slots=True)
class ProbeResult:
    listing_id: int
    ok: bool
    status_code: int | None
    ttft_ms: float | None
    error: str


def _cheapest(listing: Listing, modality: str) -> list:
    return sorted(
        (o for o in listing.offers.all() if o.model.modality == modality and o.model.is_active),
        key=lambda o: (o.model.list_input_nusd + o.model.list_output_nusd, o.model.model_id),
    )


def probe_target(listing: Listing) -> ProbeTarget | None:
    chat = _cheapest(listing, Modality.CHAT)
    rerank = [] if chat else _cheapest(listing, Modality.RERANK)
    try:
        key = crypto.key_decrypt(
            listing_id=listing.pk, kid=listing.key_id, blob=listing.key_ciphertext
        )
    except crypto.KeyDecryptionError as exc:
        logger.error("listing #%s: %s", listing.pk, exc)
        return None
    body = None
    if chat:
        model = chat[0].model
        body = openai.chat_body(  # as the gateway calls it (the catalogue's thinking mode too)
            {"messages": [{"role": "user", "content": "ping"}], "stream": False},
            upstream_model=model.upstream_name,
            upstream_params=model.upstream_params,
            stream=False,
            max_tokens=1,
        )
    elif rerank:
        body = jina.rerank_body(  # as the gateway calls it
            upstream_model=rerank[0].model.upstream_name, query="ping", documents=["pong"], top_n=1
        )
    return ProbeTarget(
        listing_id=listing.pk,
        status=listing.status,
        base_url=listing.provider.base_url.rstrip("/"),
        body=body,
        key_ciphertext=bytes(listing.key_ciphertext),
        upstream_key=key,
        rerank=bool(rerank),
    )


async def probe_one(session: Client, target: ProbeTarget) -> ProbeResult:
    key, base = target.upstream_key, target.base_url
    started = time.perf_counter()
    try:
        if target.rerank and target.body is not None:
            response = await jina.rerank_open(base, key=key, body=target.body, client=session)
            await jina.read_ranking(response, documents=1, top_n=1)
        elif target.body is not None:
            response = await openai.chat_open(base, key=key, body=target.body, client=session)
            await openai.read_json(response)
        else:
            await openai.models_list(base, key=key, client=session)
    except UpstreamError as exc:
        error = statuses.describe(exc.status) if exc.status is not None else exc.reason
        return ProbeResult(target.listing_id, False, exc.status, None, error)
    elapsed_ms = (time.perf_counter() - started) * 1000
    return ProbeResult(target.listing_id, True, 200, elapsed_ms, "")


async def probe_many(targets: list[ProbeTarget], *, concurrency: int | None = None) -> list:
    """Probe the targets, at most `concurrency` (default CONCURRENCY) requests in flight."""
    return await gather_bounded(
        probe_one, targets, concurrency=concurrency or CONCURRENCY, timeout_s=TIMEOUT_S
    )


def _claim(listing_ids: list[int], *, force: bool = False) -> list[int]:
    """The ids this process may probe now (SET NX EX interval on each, in one round trip).

    `force` (verification) takes the slots whoever holds them, so the sweep that follows within
    the interval does not probe the freshly verified listing a second time."""
    if not listing_ids:
        return []
    interval = max(1, int(settings.DRAGONFLY_PROBE_INTERVAL_SECONDS) - 1)
    pipe = get_redis().pipeline(transaction=False)
    for listing_id in listing_ids:
        pipe.set(health.lock_key(listing_id), "1", nx=not force, ex=interval)
    return [i for i, won in zip(listing_ids, pipe.execute(), strict=True) if won]


def result_apply(target: ProbeTarget, result: ProbeResult) -> None:
    """Feed one probe result into Redis health, the history, and the listing's status."""
    outcome = health_record.health_report(
        listing_id=result.listing_id,
        ok=result.ok,
        status_code=result.status_code,
        ttft_ms=result.ttft_ms,
        tokens_per_second=None,
        error=result.error,
        passive=False,
    )
    services.health_sample_record(
        listing_id=result.listing_id,
        source=HealthSource.PROBE,
        ok=result.ok,
        status_code=result.status_code,
        ttft_ms=result.ttft_ms,
        tokens_per_second=None,
        error=result.error,
    )
    if target.status == ListingStatus.PENDING:
        new = services.listing_verification_apply(
            listing_id=result.listing_id,
            key_ciphertext=target.key_ciphertext,
            ok=result.ok,
            status_code=result.status_code,
            error=result.error,
        )
        if new is not None:
            listing_nudge(listing_id=result.listing_id)  # the open listing page flips
        if new == ListingStatus.ACTIVE:
            health.health_reset(result.listing_id)
            health_record.health_report(
                listing_id=result.listing_id,
                ok=True,
                status_code=result.status_code,
                ttft_ms=result.ttft_ms,
                tokens_per_second=None,
                passive=False,
            )
    elif outcome.key_rejected:
        services.listing_suspend(
            listing_id=result.listing_id,
            reason=services.key_rejected_reason(result.status_code),
        )


def probe_run(*, listing_ids: list[int] | None = None, verify: bool = False) -> list[ProbeResult]:
    """Probe active and pending listings (all, or the given ones). Returns what was probed."""
    listings = selectors.listings_to_probe(listing_ids=listing_ids)
    if verify:
        listings = [listing for listing in listings if listing.status == ListingStatus.PENDING]
        _claim([listing.pk for listing in listings], force=True)
    else:
        claimed = set(_claim([listing.pk for listing in listings]))
        listings = [listing for listing in listings if listing.pk in claimed]
    targets = [t for t in (probe_target(listing) for listing in listings) if t is not None]
    if not targets:
        return []
    results = run_batch(probe_one, targets, concurrency=CONCURRENCY, timeout_s=TIMEOUT_S)
    by_id = {t.listing_id: t for t in targets}
    for result in results:
        try:
            result_apply(by_id[result.listing_id], result)
        except Exception:
            logger.exception("could not record the probe of listing #%s", result.listing_id)
    logger.info("probed %d listings: %d ok", len(results), sum(1 for r in results if r.ok))
    return results
