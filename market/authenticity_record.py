"""What an authenticity probe's verdict does: the history row, a confirmation probe, a suspension,
and the catalogue's fingerprint learned from trusted listings.

Suspension rule: a failure suspends only as the second failure among the last three decided
checks (passed or failed) of that model on that listing. The first failure asks again after
DRAGONFLY_AUTHENTICITY_RECHECK_SECONDS (default 5 minutes) instead of waiting hours for the next
sweep, so a substitute is off the market within minutes, while one odd answer (a provider's
brief misrouting during a deploy, a canary snapshot) never suspends an honest listing by itself.
An honest upstream answers the fixed prompt the same way every time (the checks ignore sampled
text), so two failures in a row are not chance.
"""

from __future__ import annotations

from django.conf import settings
from django.db import transaction

from market import services
from market.models import AuthenticityCheck, CatalogModel, Verdict

FAILURES_TO_SUSPEND = 2
WINDOW = 3


def suspension_reason(*, model_id: str, asked_model: str, reason: str) -> str:
    return (
        f"The authenticity probe of {model_id} failed twice in a row: {reason}. "
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


def _recheck_enqueue(listing_id: int) -> None:
    from market.tasks import authenticity_recheck_task

    transaction.on_commit(
        lambda: authenticity_recheck_task.apply_async(
            (listing_id,), countdown=settings.DRAGONFLY_AUTHENTICITY_RECHECK_SECONDS
        )
    )


def authenticity_check_apply(
    *,
    listing_id: int,
    model_pk: int,
    trusted: bool,
    prompt: str,
    asked_model: str,
    answered_model: str,
    expected_tokens: int | None,
    answered_tokens: int | None,
    verdict: str,
    reason: str,
) -> tuple[AuthenticityCheck, bool]:
    """Record one check and act on it. Returns the check and whether it suspended the listing."""
    check = AuthenticityCheck.objects.create(
        listing_id=listing_id,
        model_id=model_pk,
        verdict=verdict,
        prompt=prompt[:300],
        asked_model=asked_model[:100],
        answered_model=answered_model[:100],
        expected_prompt_tokens=expected_tokens,
        answered_prompt_tokens=answered_tokens,
        reason=reason[:300],
    )
    if verdict == Verdict.PASSED:
        if trusted and expected_tokens is None and answered_tokens is not None:
            # An operator-trusted key named the right model: its count becomes the fingerprint
            # (only where none is set: an operator's value, or the first one learned, stays).
            CatalogModel.objects.filter(pk=model_pk, probe_prompt_tokens__isnull=True).update(
                probe_prompt_tokens=answered_tokens
            )
        return check, False
    if verdict != Verdict.FAILED:
        return check, False
    if _failures_recent(listing_id=listing_id, model_pk=model_pk) >= FAILURES_TO_SUSPEND:
        model_id = CatalogModel.objects.values_list("model_id", flat=True).get(pk=model_pk)
        suspended = services.listing_suspend(
            listing_id=listing_id,
            reason=suspension_reason(model_id=model_id, asked_model=asked_model, reason=reason),
        )
        return check, suspended
    _recheck_enqueue(listing_id)
    return check, False
