"""Authenticity probes: does a listing serve the model it claims? One known-answer request per
chat model of each active listing, every few hours (DRAGONFLY_AUTHENTICITY_INTERVAL_SECONDS).

The probe sends a fixed prompt (PROMPT) with `max_tokens: 1` (a few dozen tokens paid by the
seller) and reads two things from the answer, both of which a real provider returns on every
completion and neither of which depends on sampling:
- the `model` field, which must name the catalogue's upstream model (a dated snapshot of it,
  `deepseek-chat-2025-01-01`, counts as the same model; `MiniMax-M2.5-highspeed` for
  `MiniMax-M2.5` does not);
- `usage.prompt_tokens`: what the fixed prompt costs under the serving model's tokenizer and chat
  template, which differs between model families; the expected count is the catalogue's
  `probe_prompt_tokens` (learned from the first passing probe on an operator-trusted listing).
  A relay that rewrites `model` to hide a cheaper model still counts with the cheaper tokenizer.
A behavioural question ("what model are you?") is not asked: models answer it unreliably and a
substitute can be prompted to lie. The verdict is `judge`, a pure function.

Which listings are due is kept in Redis like the health probes' single flight:
`SET df:authenticity:lock:<id> NX EX <interval ± 20 %>`; a listing whose key is absent is due, and
whoever sets it probes it. The jitter spreads the sweeps so listings are not all probed together.
Trusted listings come first in a run, so that what they say about the provider (a changed count:
market/authenticity_record.py) is known before the others' answers are judged.
Transport errors (timeouts, 5xx, 429) prove nothing about the model and record nothing: the health
probes own availability. What a failure leads to is market/authenticity_record.py.

Decrypted keys live only in AuthenticityTarget (repr hides them) for the duration of the call.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import random
import re
from dataclasses import dataclass, field

import aiohttp
from django.conf import settings

from gateway.upstream import openai
from gateway.upstream.base import UpstreamError
from market import authenticity_record, crypto, selectors
from market.models import AuthenticityCheck, CatalogModel, Listing, Modality, Verdict
from redis_clients.clients import get_redis

logger = logging.getLogger(__name__)

CONCURRENCY = 8
TIMEOUT_S = 30.0
JITTER = 0.2
# Digits, Arabic-Indic digits, CJK, an emoji, accents, a tab and JSON: tokenizers of different
# families split these differently, so the count tells them apart. Changing it invalidates every
# catalogue `probe_prompt_tokens` (clear them: trusted listings then record the new counts).
PROMPT = (
    'Dragonfly authenticity probe 7: 1234567890 ٣٤٥ 市场 🐉 naïve façade\t{"k": [1, 2]} '
    "Reply with one word."
)


@dataclass(frozen=True, slots=True)
class AuthenticityTarget:
    listing_id: int
    model_pk: int
    asked_model: str  # the catalogue's upstream name
    expected_prompt_tokens: int | None
    trusted: bool
    base_url: str
    body: bytes
    upstream_key: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class Answer:
    target: AuthenticityTarget
    model: str  # "" when the answer named none
    prompt_tokens: int | None


def lock_key(listing_id: int) -> str:
    return f"df:authenticity:lock:{int(listing_id)}"


def name_matches(asked: str, answered: str) -> bool:
    """`answered` names `asked`: the same name (any `org/` prefix and case aside), or a dated
    snapshot of it (`-` then a digit), as providers report pinned versions."""
    name = answered.rsplit("/", 1)[-1]
    return re.fullmatch(re.escape(asked) + r"(-\d[\w.-]*)?", name, flags=re.IGNORECASE) is not None


def judge(
    *,
    asked_model: str,
    answered_model: str,
    expected_tokens: int | None,
    answered_tokens: int | None,
) -> tuple[str, str]:
    """The verdict and its reason. What the answer does not say (no `model`, no usage, or no
    expected count yet) is no evidence either way: inconclusive when nothing could be compared."""
    wrongs = []
    compared = False
    if answered_model:
        compared = True
        if not name_matches(asked_model, answered_model):
            wrongs.append(f'the upstream answered as "{answered_model}" (expected "{asked_model}")')
    if expected_tokens is not None and answered_tokens is not None:
        compared = True
        if answered_tokens != expected_tokens:
            wrongs.append(
                f"the fixed probe prompt cost {answered_tokens} prompt tokens "
                f"(expected {expected_tokens}: another tokenizer)"
            )
    if wrongs:
        return Verdict.FAILED, "; ".join(wrongs)
    if not compared:
        return Verdict.INCONCLUSIVE, "the answer named no model and no comparable usage"
    return Verdict.PASSED, ""


def _chat_models(listing: Listing) -> list[CatalogModel]:
    return sorted(
        (o.model for o in listing.offers.all() if o.model.modality == Modality.CHAT),
        key=lambda m: m.model_id,
    )


def targets_for(listing: Listing) -> list[AuthenticityTarget]:
    """One target per active chat model of the listing (empty if the key cannot be decrypted)."""
    models = [m for m in _chat_models(listing) if m.is_active]
    if not models:
        return []
    try:
        key = crypto.key_decrypt(
            listing_id=listing.pk, kid=listing.key_id, blob=listing.key_ciphertext
        )
    except crypto.KeyDecryptionError as exc:
        logger.error("listing #%s: %s", listing.pk, exc)
        return []
    return [
        AuthenticityTarget(
            listing_id=listing.pk,
            model_pk=model.pk,
            asked_model=model.upstream_name,
            expected_prompt_tokens=model.probe_prompt_tokens,
            trusted=listing.trusted,
            base_url=listing.provider.base_url.rstrip("/"),
            body=openai.chat_body(  # as the gateway calls it (the catalogue's thinking mode too)
                {"messages": [{"role": "user", "content": PROMPT}], "stream": False},
                upstream_model=model.upstream_name,
                upstream_params=model.upstream_params,
                stream=False,
                max_tokens=1,
            ),
            upstream_key=key,
        )
        for model in models
    ]


def _prompt_tokens(data: dict) -> int | None:
    usage = data.get("usage")
    count = usage.get("prompt_tokens") if isinstance(usage, dict) else None
    return count if isinstance(count, int) and not isinstance(count, bool) and count >= 0 else None


async def ask(session: aiohttp.ClientSession, target: AuthenticityTarget) -> Answer | None:
    """The probe's answer, or None when the upstream did not answer with a completion."""
    try:
        response = await openai.chat_open(
            target.base_url, key=target.upstream_key, body=target.body, client=session
        )
        data = await openai.read_json(response)
    except UpstreamError as exc:
        logger.info("authenticity probe of listing #%s: %s", target.listing_id, exc.reason)
        return None
    model = data.get("model")
    return Answer(target, model[:100] if isinstance(model, str) else "", _prompt_tokens(data))


async def ask_many(targets: list[AuthenticityTarget]) -> list[Answer | None]:
    semaphore = asyncio.Semaphore(CONCURRENCY)
    timeout = aiohttp.ClientTimeout(total=TIMEOUT_S, connect=5)
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def bounded(target: AuthenticityTarget) -> Answer | None:
            async with semaphore:
                return await ask(session, target)

        return await asyncio.gather(*(bounded(t) for t in targets))


def _run_async(targets: list[AuthenticityTarget]) -> list[Answer | None]:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(ask_many(targets))
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:  # called from async code
        return pool.submit(asyncio.run, ask_many(targets)).result()


def _claim(listing_ids: list[int]) -> list[int]:
    """The due listings this process won (SET NX EX jittered interval on each, one round trip)."""
    interval = settings.DRAGONFLY_AUTHENTICITY_INTERVAL_SECONDS
    pipe = get_redis().pipeline(transaction=False)
    for listing_id in listing_ids:
        ttl = max(1, round(interval * random.uniform(1 - JITTER, 1 + JITTER)))
        pipe.set(lock_key(listing_id), "1", nx=True, ex=ttl)
    return [i for i, won in zip(listing_ids, pipe.execute(), strict=True) if won]


def authenticity_run(
    *, listing_ids: list[int] | None = None, recheck: bool = False
) -> list[AuthenticityCheck]:
    """Probe the due active chat listings (all, or the given ones); `recheck` probes the given ones
    whether due or not (the confirmation after a failure). Returns the checks recorded."""
    if not settings.DRAGONFLY_AUTHENTICITY_INTERVAL_SECONDS:
        return []
    listings = selectors.listings_to_check_authenticity(
        listing_ids=listing_ids, trusted_peers=recheck
    )
    listings = [listing for listing in listings if _chat_models(listing)]
    if not recheck:
        won = set(_claim([listing.pk for listing in listings]))
        listings = [listing for listing in listings if listing.pk in won]
    targets = [t for listing in listings for t in targets_for(listing)]
    if not targets:
        return []
    checks = []
    for answer in _run_async(targets):
        if answer is None:
            continue
        target = answer.target
        verdict, reason = judge(
            asked_model=target.asked_model,
            answered_model=answer.model,
            expected_tokens=target.expected_prompt_tokens,
            answered_tokens=answer.prompt_tokens,
        )
        try:
            check, suspended = authenticity_record.authenticity_check_apply(
                listing_id=target.listing_id,
                model_pk=target.model_pk,
                trusted=target.trusted,
                prompt=PROMPT,
                asked_model=target.asked_model,
                answered_model=answer.model,
                expected_tokens=target.expected_prompt_tokens,
                answered_tokens=answer.prompt_tokens,
                verdict=verdict,
                reason=reason,
                count_only=not answer.model or name_matches(target.asked_model, answer.model),
            )
        except Exception:
            logger.exception("could not record the authenticity probe of #%s", target.listing_id)
            continue
        checks.append(check)
        if suspended:  # probed again as soon as it is back on the market (re-key, operator)
            get_redis().delete(lock_key(target.listing_id))
    failed = sum(1 for c in checks if c.verdict == Verdict.FAILED)
    logger.info("authenticity: %d checks, %d failed", len(checks), failed)
    return checks
