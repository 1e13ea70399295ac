"""What an authenticity probe's verdict does: the history row, a confirmation probe, a suspension,
and the catalogue's fingerprint learned from trusted listings.

Suspension rule: a failure suspends only as the second failure among the last three decided
checks (passed or failed) of that model on that listing. The first failure asks again after
DRAGONFLY_AUTHENTICITY_RECHECK_SECONDS (default 5 minutes) instead of waiting hours for the next
sweep, so a substitute is off the market within minutes, while one odd answer (a provider's
brief misrouting during a deploy, a canary snapshot) never suspends an honest listing by itself.
An honest upstream answers the fixed prompt the same way every time (the checks ignore sampled
text), so two failures among three checks are not chance.

A provider can change its own answer for everyone (a new chat template, a re-trained embedding
model under the same name). The trusted listings tell that apart from a substitute: a
fingerprint-only failure (the count or the fingerprint, under the right name) on a trusted
listing clears the catalogue's fingerprint (the next passing probe learns the new one) instead of
counting against it, and one elsewhere is inconclusive when the fingerprint it was judged by is
gone or a trusted listing of the model recently answered the same. Its confirmation probe asks
the model's trusted listings too, first, so that evidence is minutes old.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from market import authenticity_refunds, services
from market.authenticity_asks import fingerprint_gap
from market.models import AuthenticityCheck, CatalogModel, Verdict

logger = logging.getLogger(__name__)

FAILURES_TO_SUSPEND = 2
WINDOW = 3
REFUND_RETRY_SECONDS = 60


def suspension_reason(*, model_id: str, asked_model: str, reason: str, since: datetime) -> str:
    return (
        f"The authenticity probe of {model_id} failed twice in its last three checks: {reason}. "
        f"What the listing served with {model_id} since {since:%Y-%m-%d %H:%M} UTC is refunded "
        "to its buyers from your earnings (Trading Terms, clause 8). "
        f'Make sure the key is answered by "{asked_model}" itself (no relay or model mapping '
        "in between), then re-key the listing."
    )


def _failures_recent(*, listing_id: int, model_pk: int) -> int:
    verdicts = (
        AuthenticityCheck.objects.filter(
            listing_id=listing_id,
            model_id=model_pk,
            verdict__in=[Verdict.PASSED, Verdict.FAILED],
        )
        .order_by("-at", "-pk")
        .values_list("verdict", flat=True)[:WINDOW]
    )
    return sum(1 for v in verdicts if v == Verdict.FAILED)


def _same_evidence(
    check: AuthenticityCheck, *, modality: str, tokens: int | None, fingerprint: dict | None
) -> bool:
    """`check` answered what this answer did: the same count, a matching fingerprint."""
    if check.answered_prompt_tokens != tokens:
        return False
    if check.answered_fingerprint is None or fingerprint is None:
        return check.answered_fingerprint == fingerprint
    return fingerprint_gap(modality, check.answered_fingerprint, fingerprint) == ""


def _provider_changed(
    *,
    listing_id: int,
    model_pk: int,
    modality: str,
    trusted: bool,
    expected: tuple[int | None, dict | None],
    answered: tuple[int | None, dict | None],
) -> str:
    """Why a fingerprint-only failure is the provider's doing, not the seller's ("" if it is
    not). `expected` and `answered` are (input tokens, fingerprint)."""
    with transaction.atomic():
        model = CatalogModel.objects.select_for_update().get(pk=model_pk)
        current = (model.probe_prompt_tokens, model.probe_fingerprint)
        if trusted:
            if current == expected:  # not already cleared or relearned by another probe
                model.probe_prompt_tokens = model.probe_fingerprint = None
                model.save(update_fields=["probe_prompt_tokens", "probe_fingerprint"])
            return (
                "a trusted listing: the provider's answer changed, the fingerprint is learned again"
            )
    if current != expected:
        return "a trusted listing answers the same: the provider changed, not the seller"
    since = timezone.now() - timedelta(seconds=2 * settings.DRAGONFLY_AUTHENTICITY_INTERVAL_SECONDS)
    peers = AuthenticityCheck.objects.filter(
        model_id=model_pk, listing__trusted=True, at__gte=since
    ).exclude(listing_id=listing_id)[:20]
    tokens, fingerprint = answered
    if any(
        _same_evidence(peer, modality=modality, tokens=tokens, fingerprint=fingerprint)
        for peer in peers
    ):
        return "a trusted listing answers the same: the provider changed, not the seller"
    return ""


def _refund_after_commit(listing_id: int, model_pk: int, since: datetime) -> None:
    """Refund what the listing served, here, once the suspension has committed: no broker in
    between, so a Redis blink cannot lose the refunds. Should the database fail midway, the rest
    is left to the Celery task (queued with a delay; what was refunded is not refunded twice)."""
    from market.tasks import authenticity_refunds_task

    def refund() -> None:
        try:
            authenticity_refunds.refund_unproven(
                listing_id=listing_id, model_pk=model_pk, since=since
            )
        except Exception:
            logger.exception("refunds of listing #%s stopped; queued to finish", listing_id)
            authenticity_refunds_task.apply_async(
                (listing_id, model_pk, since.isoformat()), countdown=REFUND_RETRY_SECONDS
            )

    transaction.on_commit(refund, robust=True)  # robust: a failure here is logged, not raised


def _recheck_enqueue(listing_id: int) -> None:
    """The confirmation probe, queued after commit. If the broker cannot take it, that is logged
    and the listing's next sweep asks again."""
    from market.tasks import authenticity_recheck_task

    transaction.on_commit(
        lambda: authenticity_recheck_task.apply_async(
            (listing_id,), countdown=settings.DRAGONFLY_AUTHENTICITY_RECHECK_SECONDS
        ),
        robust=True,
    )


def authenticity_check_apply(
    *,
    listing_id: int,
    model_pk: int,
    modality: str,
    trusted: bool,
    prompt: str,
    asked_model: str,
    answered_model: str,
    expected_tokens: int | None,
    answered_tokens: int | None,
    expected_fingerprint: dict | None,
    answered_fingerprint: dict | None,
    verdict: str,
    reason: str,
    fingerprint_only: bool = False,
) -> tuple[AuthenticityCheck, bool]:
    """Record one check and act on it. Returns the check and whether it suspended the listing.

    `fingerprint_only`: the failure is the token count or the fingerprint alone (the `model`
    named the right one, or none)."""
    if verdict == Verdict.FAILED and fingerprint_only:
        excuse = _provider_changed(
            listing_id=listing_id,
            model_pk=model_pk,
            modality=modality,
            trusted=trusted,
            expected=(expected_tokens, expected_fingerprint),
            answered=(answered_tokens, answered_fingerprint),
        )
        if excuse:
            verdict, reason = Verdict.INCONCLUSIVE, f"{reason}; {excuse}"
    learns = trusted and (
        verdict == Verdict.PASSED
        # Nothing to compare yet (a wire that names no model): the trusted answer is the reference.
        or (
            verdict == Verdict.INCONCLUSIVE and expected_tokens is None and not expected_fingerprint
        )
    )
    if learns and verdict == Verdict.INCONCLUSIVE:
        reason = f"{reason}; a trusted listing: its answer is learned as the model's fingerprint"
    check = AuthenticityCheck.objects.create(
        listing_id=listing_id,
        model_id=model_pk,
        verdict=verdict,
        prompt=prompt[:300],
        asked_model=asked_model[:100],
        answered_model=answered_model[:100],
        expected_prompt_tokens=expected_tokens,
        answered_prompt_tokens=answered_tokens,
        expected_fingerprint=expected_fingerprint,
        answered_fingerprint=answered_fingerprint,
        reason=reason[:300],
    )
    if learns:
        _learn(model_pk, tokens=answered_tokens, fingerprint=answered_fingerprint)
    if verdict != Verdict.FAILED:
        return check, False
    if _failures_recent(listing_id=listing_id, model_pk=model_pk) >= FAILURES_TO_SUSPEND:
        model_id = CatalogModel.objects.values_list("model_id", flat=True).get(pk=model_pk)
        since = authenticity_refunds.unproven_since(listing_id=listing_id, model_pk=model_pk)
        with transaction.atomic():
            suspended = services.listing_suspend(
                listing_id=listing_id,
                reason=suspension_reason(
                    model_id=model_id, asked_model=asked_model, reason=reason, since=since
                ),
            )
            # Each model that fails so is refunded, also one whose failure finds the listing
            # already suspended by another model's (one key serves both: both were substituted).
            _refund_after_commit(listing_id, model_pk, since)
        return check, suspended
    _recheck_enqueue(listing_id)
    return check, False


def _learn(model_pk: int, *, tokens: int | None, fingerprint: dict | None) -> None:
    """An operator-trusted key named the right model: what it answered becomes the catalogue's
    fingerprint (only where none is set: an operator's value, or the first one learned, stays)."""
    if tokens is not None:
        CatalogModel.objects.filter(pk=model_pk, probe_prompt_tokens__isnull=True).update(
            probe_prompt_tokens=tokens
        )
    if fingerprint is not None:
        CatalogModel.objects.filter(pk=model_pk, probe_fingerprint__isnull=True).update(
            probe_fingerprint=fingerprint
        )
