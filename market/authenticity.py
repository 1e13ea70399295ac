"""Authenticity probes: does a listing serve the model it claims? One known-answer request per
model of each active listing, every few hours (DRAGONFLY_AUTHENTICITY_INTERVAL_SECONDS).

What each modality asks and what it reads from the answer is market/authenticity_asks.py; all of
it is what a real provider returns on every call and none of it depends on sampling:
- the `model` field, which must name the catalogue's upstream model (a dated snapshot of it,
  `deepseek-chat-2025-01-01`, counts as the same model; `MiniMax-M2.5-highspeed` for
  `MiniMax-M2.5` does not);
- the input tokens the fixed text costs under the serving model's tokenizer (and chat template),
  which differ between model families; the expected count is the catalogue's
  `probe_prompt_tokens` (learned from the first passing probe on an operator-trusted listing).
  A relay that rewrites `model` to hide a cheaper model still counts with the cheaper tokenizer;
- a fingerprint where the modality has one (an embedding's vector, a ranking's scores, speech's
  billed characters and length), compared with the catalogue's `probe_fingerprint`, learned the
  same way.
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

import logging
import random
import re
from dataclasses import dataclass, field

from django.conf import settings

from gateway.upstream.base import UpstreamError
from gateway.upstream.client import Client
from market import authenticity_record, crypto, selectors
from market.authenticity_asks import ASKS, Evidence, fingerprint_gap
from market.models import AuthenticityCheck, CatalogModel, Listing, Modality, Verdict
from market.upstream_batch import run_batch
from redis_clients.clients import get_redis

logger = logging.getLogger(__name__)

CONCURRENCY = 8
TIMEOUT_S = 30.0
JITTER = 0.2


@dataclass(frozen=True, slots=True)
class AuthenticityTarget:
    listing_id: int
    model_pk: int
    modality: str
    asked_model: str  # the catalogue's upstream name
    expected_prompt_tokens: int | None
    expected_fingerprint: dict | None
    trusted: bool
    provider: str  # the provider's slug (its embeddings wire format)
    base_url: str
    body: bytes
    upstream_key: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class Answer:
    target: AuthenticityTarget
    evidence: Evidence


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
    modality: str = Modality.CHAT,
    expected_fingerprint: dict | None = None,
    answered_fingerprint: dict | None = None,
) -> tuple[str, str]:
    """The verdict and its reason. What the answer does not say (no `model`, no usage, no
    fingerprint, or nothing expected yet) is no evidence either way: inconclusive when nothing
    could be compared."""
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
                f"the fixed probe text cost {answered_tokens} input tokens "
                f"(expected {expected_tokens}: another tokenizer)"
            )
    gap = fingerprint_gap(modality, expected_fingerprint, answered_fingerprint)
    if gap is not None:
        compared = True
        if gap:
            wrongs.append(gap)
    if wrongs:
        return Verdict.FAILED, "; ".join(wrongs)
    if not compared:
        return Verdict.INCONCLUSIVE, "the answer named no model and no comparable usage"
    return Verdict.PASSED, ""


def _probed_models(listing: Listing) -> list[CatalogModel]:
    return sorted(
        (o.model for o in listing.offers.all() if o.model.is_active),
        key=lambda m: m.model_id,
    )


def targets_for(listing: Listing) -> list[AuthenticityTarget]:
    """One target per active model of the listing (empty if the key cannot be decrypted)."""
    models = _probed_models(listing)
    if not models:
        return []
    try:
        key = crypto.key_decrypt(
            listing_id=listing.pk, kid=listing.key_id, blob=listing.key_ciphertext
        )
    except crypto.KeyDecryptionError as exc:
        logger.error("listing #%s: %s", listing.pk, exc)
        return []
    provider = listing.provider.slug
    return [
        AuthenticityTarget(
            listing_id=listing.pk,
            model_pk=model.pk,
            modality=model.modality,
            asked_model=model.upstream_name,
            expected_prompt_tokens=model.probe_prompt_tokens,
            expected_fingerprint=model.probe_fingerprint,
            trusted=listing.trusted,
            provider=provider,
            base_url=listing.provider.base_url.rstrip("/"),
            body=ASKS[Modality(model.modality)].body(model, provider),
            upstream_key=key,
        )
        for model in models
    ]


async def ask(session: Client, target: AuthenticityTarget) -> Answer | None:
    """The probe's answer, or None when the upstream did not answer as the modality does."""
    call = ASKS[Modality(target.modality)].call
    try:
        evidence = await call(
            session, target.base_url, target.upstream_key, target.body, target.provider
        )
    except UpstreamError as exc:
        logger.info("authenticity probe of listing #%s: %s", target.listing_id, exc.reason)
        return None
    return Answer(target, evidence)


def _claim(listing_ids: list[int]) -> list[int]:
    """The due listings this process won (SET NX EX jittered interval on each, one round trip)."""
    interval = settings.DRAGONFLY_AUTHENTICITY_INTERVAL_SECONDS
    pipe = get_redis().pipeline(transaction=False)
    for listing_id in listing_ids:
        ttl = max(1, round(interval * random.uniform(1 - JITTER, 1 + JITTER)))
        pipe.set(lock_key(listing_id), "1", nx=True, ex=ttl)
    return [i for i, won in zip(listing_ids, pipe.execute(), strict=True) if won]


def _record(answer: Answer) -> AuthenticityCheck | None:
    target, evidence = answer.target, answer.evidence
    verdict, reason = judge(
        asked_model=target.asked_model,
        answered_model=evidence.model,
        expected_tokens=target.expected_prompt_tokens,
        answered_tokens=evidence.tokens,
        modality=target.modality,
        expected_fingerprint=target.expected_fingerprint,
        answered_fingerprint=evidence.fingerprint,
    )
    try:
        check, suspended = authenticity_record.authenticity_check_apply(
            listing_id=target.listing_id,
            model_pk=target.model_pk,
            modality=target.modality,
            trusted=target.trusted,
            prompt=ASKS[Modality(target.modality)].text,
            asked_model=target.asked_model,
            answered_model=evidence.model,
            expected_tokens=target.expected_prompt_tokens,
            answered_tokens=evidence.tokens,
            expected_fingerprint=target.expected_fingerprint,
            answered_fingerprint=evidence.fingerprint,
            verdict=verdict,
            reason=reason,
            fingerprint_only=not evidence.model or name_matches(target.asked_model, evidence.model),
        )
    except Exception:
        logger.exception("could not record the authenticity probe of #%s", target.listing_id)
        return None
    if suspended:  # probed again as soon as it is back on the market (re-key, operator)
        get_redis().delete(lock_key(target.listing_id))
    return check


def authenticity_run(
    *, listing_ids: list[int] | None = None, recheck: bool = False
) -> list[AuthenticityCheck]:
    """Probe the due active listings (all, or the given ones); `recheck` probes the given ones
    whether due or not (the confirmation after a failure). Returns the checks recorded."""
    if not settings.DRAGONFLY_AUTHENTICITY_INTERVAL_SECONDS:
        return []
    listings = selectors.listings_to_check_authenticity(
        listing_ids=listing_ids, trusted_peers=recheck
    )
    listings = [listing for listing in listings if _probed_models(listing)]
    if not recheck:
        won = set(_claim([listing.pk for listing in listings]))
        listings = [listing for listing in listings if listing.pk in won]
    targets = [t for listing in listings for t in targets_for(listing)]
    if not targets:
        return []
    answers = run_batch(ask, targets, concurrency=CONCURRENCY, timeout_s=TIMEOUT_S)
    checks = [_record(answer) for answer in answers if answer is not None]
    recorded = [check for check in checks if check is not None]
    failed = sum(1 for c in recorded if c.verdict == Verdict.FAILED)
    logger.info("authenticity: %d checks, %d failed", len(recorded), failed)
    return recorded
