"""Writes of the market: listings (create, re-key, pause, resume, delete, suspend), terms, health history.

Status changes made by automation (probes, passive reports) are conditional updates that only
move listings from the status they expect, so a seller's pause is never undone by them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from gateway.upstream import statuses
from mail.notices import email_send
from market import crypto, health, selectors
from market.models import (
    CatalogModel,
    HealthSample,
    Listing,
    ListingModel,
    ListingStatus,
    Provider,
    TermsAcceptance,
    TermsAudience,
    TermsVersion,
)

logger = logging.getLogger(__name__)

MAX_KEY_LENGTH = 4096


@dataclass(frozen=True, slots=True)
class OfferInput:
    model: CatalogModel
    ask_input_nusd: int
    ask_output_nusd: int


def key_rejected_reason(status_code: int | None) -> str:
    if status_code == 402:
        return "The provider reports no balance on this key (HTTP 402)."
    return f"The provider rejected the key (HTTP {status_code})."


# --- Trading Terms ---------------------------------------------------------------------------


def terms_accept(*, user, audience: str, ip_address: str | None) -> TermsAcceptance:
    """Record that the user accepted the current terms of the audience (idempotent per version)."""
    current = selectors.terms_current(audience=audience)
    if current is None:
        raise ValidationError(f"No {audience} terms are published.")
    acceptance, _ = TermsAcceptance.objects.get_or_create(
        user=user, terms=current, defaults={"ip_address": ip_address or None}
    )
    return acceptance


def terms_publish(*, audience: str, title: str, body: str) -> TermsVersion:
    """Publish the next version for the audience."""
    with transaction.atomic():
        last = (
            TermsVersion.objects.select_for_update()
            .filter(audience=audience)
            .order_by("-version")
            .first()
        )
        return TermsVersion.objects.create(
            audience=audience,
            version=(last.version + 1) if last else 1,
            title=title,
            body=body,
            published_at=timezone.now(),
        )


def terms_next_version(*, audience: str) -> int:
    last = TermsVersion.objects.filter(audience=audience).order_by("-version").first()
    return (last.version + 1) if last else 1


def terms_draft_publish(*, terms_id: int) -> TermsVersion:
    """Publish a draft as the audience's newest version (renumbered above every other one), so
    it becomes the current terms and everyone must accept it again."""
    with transaction.atomic():
        draft = TermsVersion.objects.select_for_update().get(pk=terms_id)
        if draft.published_at is not None:
            raise ValidationError("These terms are already published.")
        others = (
            TermsVersion.objects.select_for_update()
            .filter(audience=draft.audience)
            .exclude(pk=draft.pk)
            .order_by("-version")
            .first()
        )
        draft.version = max(draft.version, (others.version + 1) if others else 1)
        draft.published_at = timezone.now()
        draft.save(update_fields=["version", "published_at"])
    return draft


def terms_ensure_v1() -> int:
    """Make sure v1 of both audiences exists and is published (as migration 0002 does)."""
    from market import terms_text

    created = 0
    for audience, title, body in (
        (TermsAudience.BUYER, terms_text.BUYER_V1_TITLE, terms_text.BUYER_V1_BODY),
        (TermsAudience.SELLER, terms_text.SELLER_V1_TITLE, terms_text.SELLER_V1_BODY),
    ):
        _, was_created = TermsVersion.objects.get_or_create(
            audience=audience,
            version=1,
            defaults={"title": title, "body": body, "published_at": timezone.now()},
        )
        created += was_created
    return created


# --- Listings ----------------------------------------------------------------------------------


def _validate_offers(*, provider: Provider, offers: Sequence[OfferInput]) -> None:
    if not offers:
        raise ValidationError({"models": "Choose at least one model."})
    errors: dict[str, list[str]] = {}
    seen = set()
    for offer in offers:
        model = offer.model
        if model.pk in seen:
            errors.setdefault("models", []).append(f"{model.model_id} is listed twice.")
        seen.add(model.pk)
        if model.provider_id != provider.pk:
            errors.setdefault("models", []).append(
                f"{model.model_id} is not a {provider.name} model."
            )
        if not model.is_active:
            errors.setdefault("models", []).append(f"{model.model_id} is not offered.")
        for side, ask, list_price in (
            ("input", offer.ask_input_nusd, model.list_input_nusd),
            ("output", offer.ask_output_nusd, model.list_output_nusd),
        ):
            if ask < 0:
                errors.setdefault(f"ask_{side}_{model.pk}", []).append("Asks cannot be negative.")
            elif ask > list_price:
                errors.setdefault(f"ask_{side}_{model.pk}", []).append(
                    "The ask cannot be above the list price."
                )
    if errors:
        raise ValidationError(errors)


def _validate_key(upstream_key: str) -> str:
    key = (upstream_key or "").strip()
    if not key:
        raise ValidationError({"upstream_key": "Enter the upstream key."})
    if len(key) > MAX_KEY_LENGTH or any(ch.isspace() for ch in key):
        raise ValidationError({"upstream_key": "That does not look like an API key."})
    return key


def _store_key(listing: Listing, key: str) -> None:
    kid, blob = crypto.key_encrypt(listing_id=listing.pk, plaintext=key)
    listing.key_id, listing.key_ciphertext, listing.key_last4 = kid, blob, crypto.key_last4(key)


def _enqueue_verification(listing_id: int) -> None:
    """The verification probe, queued after commit. A broker that cannot take it is logged, not
    raised (the seller's listing is saved either way), and the next health sweep, which probes
    pending listings too, verifies it."""
    from market.tasks import probe_listing_task

    transaction.on_commit(lambda: probe_listing_task.delay(listing_id), robust=True)


def listing_create(
    *,
    seller,
    provider: Provider,
    name: str,
    upstream_key: str,
    offers: Sequence[OfferInput],
    concurrency_cap: int = 8,
    requests_per_minute: int | None = None,
    daily_spend_cap_nusd: int | None = None,
    status: str = ListingStatus.PENDING,
    verify: bool = True,
) -> Listing:
    """Create a listing; it goes live only after a verification probe (enqueued after commit)."""
    if not selectors.seller_is_active(user=seller):
        raise ValidationError("Accept the current seller Trading Terms first.")
    if not provider.is_active:
        raise ValidationError({"provider": "That provider is not on the market."})
    key = _validate_key(upstream_key)
    _validate_offers(provider=provider, offers=offers)
    with transaction.atomic():
        listing = Listing.objects.create(
            seller=seller,
            provider=provider,
            name=name.strip()[:80] or provider.name,
            status=status,
            key_ciphertext=b"",
            key_id="",
            key_last4="",
            concurrency_cap=concurrency_cap,
            requests_per_minute=requests_per_minute,
            daily_spend_cap_nusd=daily_spend_cap_nusd,
        )
        _store_key(listing, key)  # needs the pk: the id is the associated data
        listing.save(update_fields=["key_id", "key_ciphertext", "key_last4"])
        ListingModel.objects.bulk_create(
            ListingModel(
                listing=listing,
                model=o.model,
                ask_input_nusd=o.ask_input_nusd,
                ask_output_nusd=o.ask_output_nusd,
            )
            for o in offers
        )
        if verify and status == ListingStatus.PENDING:
            _enqueue_verification(listing.pk)
    return listing


def listing_update(
    *,
    listing: Listing,
    name: str,
    offers: Sequence[OfferInput],
    concurrency_cap: int,
    requests_per_minute: int | None,
    daily_spend_cap_nusd: int | None,
) -> Listing:
    """Change asks, models and caps (the key and the status stay as they are)."""
    _validate_offers(provider=listing.provider, offers=offers)
    with transaction.atomic():
        Listing.objects.filter(pk=listing.pk).update(
            name=name.strip()[:80] or listing.name,
            concurrency_cap=concurrency_cap,
            requests_per_minute=requests_per_minute,
            daily_spend_cap_nusd=daily_spend_cap_nusd,
            updated_at=timezone.now(),
        )
        keep = [o.model.pk for o in offers]
        ListingModel.objects.filter(listing=listing).exclude(model_id__in=keep).delete()
        for o in offers:
            ListingModel.objects.update_or_create(
                listing=listing,
                model=o.model,
                defaults={"ask_input_nusd": o.ask_input_nusd, "ask_output_nusd": o.ask_output_nusd},
            )
    listing.refresh_from_db()
    return listing


def listing_rekey(*, listing: Listing, upstream_key: str) -> Listing:
    """Replace the key. A paused listing stays paused; any other goes back to pending + probe."""
    key = _validate_key(upstream_key)
    with transaction.atomic():
        locked = Listing.objects.select_for_update().get(pk=listing.pk)
        if locked.status == ListingStatus.DELETED:
            raise ValidationError("This listing is deleted.")
        _store_key(locked, key)
        fields = ["key_id", "key_ciphertext", "key_last4", "status_reason", "updated_at"]
        locked.status_reason = ""
        if locked.status != ListingStatus.PAUSED:
            locked.status = ListingStatus.PENDING
            fields.append("status")
            _enqueue_verification(locked.pk)
        locked.save(update_fields=fields)
        transaction.on_commit(lambda: health.health_reset(locked.pk))
    return locked


def _transition(listing_id: int, *, from_statuses: Sequence[str], to: str, reason: str) -> bool:
    return bool(
        Listing.objects.filter(pk=listing_id, status__in=list(from_statuses)).update(
            status=to, status_reason=reason, updated_at=timezone.now()
        )
    )


def listing_pause(*, listing: Listing) -> bool:
    return _transition(
        listing.pk,
        from_statuses=[ListingStatus.ACTIVE, ListingStatus.PENDING],
        to=ListingStatus.PAUSED,
        reason="Paused by the seller.",
    )


def listing_resume(*, listing: Listing) -> bool:
    """Paused -> pending; a verification probe puts it back on the market."""
    with transaction.atomic():
        moved = _transition(
            listing.pk, from_statuses=[ListingStatus.PAUSED], to=ListingStatus.PENDING, reason=""
        )
        if moved:
            _enqueue_verification(listing.pk)
    return moved


def listing_delete(*, listing: Listing) -> bool:
    """Soft delete: the row stays for the ledger and history; it never routes again."""
    return bool(
        Listing.objects.filter(pk=listing.pk)
        .exclude(status=ListingStatus.DELETED)
        .update(status=ListingStatus.DELETED, updated_at=timezone.now())
    )


def listing_set_trusted(*, listing_id: int, trusted: bool) -> None:
    Listing.objects.filter(pk=listing_id).update(trusted=trusted, updated_at=timezone.now())


def listing_suspend(*, listing_id: int, reason: str, notify: bool = True) -> bool:
    """Active -> suspended, emailing the seller once (only the update that moves it sends)."""
    moved = _transition(
        listing_id, from_statuses=[ListingStatus.ACTIVE], to=ListingStatus.SUSPENDED, reason=reason
    )
    if moved and notify:
        listing = Listing.objects.select_related("seller").get(pk=listing_id)
        _email_seller_suspended(listing, reason)
    return moved


def listing_unsuspend(*, listing_id: int) -> bool:
    """Operators: suspended -> pending, re-verified by a probe."""
    with transaction.atomic():
        moved = _transition(
            listing_id,
            from_statuses=[ListingStatus.SUSPENDED],
            to=ListingStatus.PENDING,
            reason="",
        )
        if moved:
            transaction.on_commit(lambda: health.health_reset(listing_id))
            _enqueue_verification(listing_id)
    return moved


def _email_seller_suspended(listing: Listing, reason: str) -> None:
    email_send(
        template_prefix="market/email/listing_suspended",
        to=listing.seller.email,
        context={
            "listing": listing,
            "reason": reason,
            "portal_url": f"{settings.DRAGONFLY_BASE_URL}/seller/listings/{listing.pk}/",
        },
    )


def listing_verification_apply(
    *, listing_id: int, key_ciphertext: bytes, ok: bool, status_code: int | None, error: str
) -> str | None:
    """The outcome of a probe on a pending listing. Returns the new status, or None if unchanged.

    Applies only if the listing is still pending with the key that was probed (a re-key or a pause
    while the probe ran wins).
    """
    still = Listing.objects.filter(
        pk=listing_id, status=ListingStatus.PENDING, key_ciphertext=key_ciphertext
    )
    if ok:
        if still.update(status=ListingStatus.ACTIVE, status_reason="", updated_at=timezone.now()):
            return ListingStatus.ACTIVE
        return None
    if statuses.lasting(status_code):  # asking again would get the same answer
        reason = (
            key_rejected_reason(status_code)
            if statuses.key_rejected(status_code)
            else f"The verification probe was refused: {error}"
        )
        if still.update(status=ListingStatus.REJECTED, status_reason=reason):
            return ListingStatus.REJECTED
        return None
    still.update(status_reason=f"Verification will be retried: {error}")
    return None


def health_sample_record(
    *,
    listing_id: int,
    source: str,
    ok: bool,
    status_code: int | None,
    ttft_ms: float | None,
    tokens_per_second: float | None,
    error: str = "",
) -> HealthSample:
    return HealthSample.objects.create(
        listing_id=listing_id,
        source=source,
        ok=ok,
        status_code=status_code if status_code and 0 < status_code < 1000 else None,
        ttft_ms=round(ttft_ms) if ttft_ms is not None and ttft_ms >= 0 else None,
        tokens_per_second=tokens_per_second,
        error=health.clean_error(error),
    )


def listing_keys_rotate(*, progress: Callable[[int, int], None] | None = None) -> int:
    """Re-encrypt every listing's key under the current kid; returns how many changed."""
    current = crypto.current_kid()
    ids = list(Listing.objects.exclude(key_id=current).order_by("pk").values_list("pk", flat=True))
    done = 0
    for listing_id in ids:
        with transaction.atomic():
            listing = Listing.objects.select_for_update().get(pk=listing_id)
            if listing.key_id != current and listing.key_ciphertext:
                plain = crypto.key_decrypt(
                    listing_id=listing.pk, kid=listing.key_id, blob=listing.key_ciphertext
                )
                listing.key_id, listing.key_ciphertext = crypto.key_encrypt(
                    listing_id=listing.pk, plaintext=plain
                )
                del plain
                listing.save(update_fields=["key_id", "key_ciphertext"])
        done += 1
        if progress:
            progress(done, len(ids))
    return done


# --- the catalogue ----------------------------------------------------------------------------


@transaction.atomic
def catalogue_model_default_set(*, model_id: str) -> CatalogModel:
    """Make `model_id` its modality's platform default (where unknown model names go), in place
    of the one before. The rows of the modality are locked, so two operators cannot leave two."""
    model = CatalogModel.objects.select_for_update().get(model_id=model_id)
    list(CatalogModel.objects.select_for_update().filter(modality=model.modality))
    CatalogModel.objects.filter(modality=model.modality, platform_default=True).exclude(
        pk=model.pk
    ).update(platform_default=False)
    if not model.platform_default:
        model.platform_default = True
        model.save(update_fields=["platform_default"])
    return model
