"""What an authenticity probe's verdict does: the history row, a confirmation probe, a suspension,
and the catalogue's fingerprint learned from trusted listings.

Suspension rule: a failure suspends only as the second failure among the last three decided
checks (passed or failed) of that model on that listing. The first failure asks again after
DRAGONFLY_AUTHENTICITY_RECHECK_SECONDS (default 5 minutes) instead of waiting hours for the next
sweep, so a substitute is off the market within minutes, while one odd answer (a provider's
brief misrouting during a deploy, a canary snapshot) never suspends an honest listing by itself.
An honest upstream answers the fixed prompt the same way every time (the checks ignore sampled
text), so two failures among three checks are not chance.

A provider can change its own count for everyone (a new chat template). The trusted listings
tell that apart from a substitute: a count-only failure on a trusted listing clears the
catalogue's fingerprint (the next passing probe learns the new one) instead of counting against
it, and a count-only failure elsewhere is inconclusive when the fingerprint it was judged by is
gone or a trusted listing of the model recently counted the same. Its confirmation probe asks
the model's trusted listings too, first, so that evidence is minutes old.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from market import services
from market.models import AuthenticityCheck, CatalogModel, Verdict

FAILURES_TO_SUSPEND = 2
WINDOW = 3


def suspension_reason(*, model_id: str, asked_model: str, reason: str) -> str:
    return (
        f"The authenticity probe of {model_id} failed twice in its last three checks: {reason}. "
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


def _provider_changed(
    *, listing_id: int, model_pk: int, trusted: bool, expected: int | None, answered: int | None
) -> str:
    """Why a count-only failure is the provider's doing, not the seller's ("" if it is not)."""
    if trusted:
        CatalogModel.objects.filter(pk=model_pk, probe_prompt_tokens=expected).update(
            probe_prompt_tokens=None
        )
        return "a trusted listing: the provider's count changed, the fingerprint is learned again"
    current = CatalogModel.objects.values_list("probe_prompt_tokens", flat=True).get(pk=model_pk)
    since = timezone.now() - timedelta(seconds=2 * settings.DRAGONFLY_AUTHENTICITY_INTERVAL_SECONDS)
    if current != expected or (
        AuthenticityCheck.objects.filter(
            model_id=model_pk, listing__trusted=True, answered_prompt_tokens=answered, at__gte=since
        )
        .exclude(listing_id=listing_id)
        .exists()
    ):
        return "a trusted listing counts the same: the provider changed, not the seller"
    return ""


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
    count_only: bool = False,
) -> tuple[AuthenticityCheck, bool]:
    """Record one check and act on it. Returns the check and whether it suspended the listing.

    `count_only`: the failure is the prompt-token count alone (the `model` named the right one)."""
    if verdict == Verdict.FAILED and count_only:
        excuse = _provider_changed(
            listing_id=listing_id,
            model_pk=model_pk,
            trusted=trusted,
            expected=expected_tokens,
            answered=answered_tokens,
        )
        if excuse:
            verdict, reason = Verdict.INCONCLUSIVE, f"{reason}; {excuse}"
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
