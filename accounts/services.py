"""Writes for accounts: signup setup, the signup credit on verification, routing profiles, access keys."""

from __future__ import annotations

import logging
from datetime import timedelta
from importlib import import_module
from typing import Any

from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from redis.exceptions import RedisError

from accounts import keys, selectors, validation
from accounts.emails import email_canonicalize
from accounts.models import AccessKey, PersonalToken, Plan, RoutingProfile, User

DEFAULT_PROFILE_NAME = "Default"
TOUCH_INTERVAL = timedelta(minutes=1)

PROFILE_FIELDS = (
    "strategy",
    "max_input_price_nusd",
    "max_output_price_nusd",
    "soft_max_ttft_ms",
    "hard_max_ttft_ms",
    "soft_min_tps",
    "hard_min_tps",
    "privacy_mode",
    "provider_only",
    "provider_ignore",
    "provider_order",
    "aliases_enabled",
    "model_aliases",
    "default_model",
    "strict_models",
)

logger = logging.getLogger(__name__)


_PROFILE_INT_CEILINGS = {
    "soft_max_ttft_ms": validation.MAX_TTFT_MS,
    "hard_max_ttft_ms": validation.MAX_TTFT_MS,
    "soft_min_tps": validation.MAX_TPS,
    "hard_min_tps": validation.MAX_TPS,
}


class EmailNotVerified(Exception):
    """Key creation stays locked until the account's email address is verified."""


# --- signup and verification -------------------------------------------------------------------


def user_signup_setup(*, user: User) -> None:
    """Right after signup: fold the address for the credit rule and give the user a Default profile."""
    canonical = email_canonicalize(user.email)
    if user.email_canonical != canonical:
        user.email_canonical = canonical
        user.save(update_fields=["email_canonical"])
    routing_profile_default(user=user)


def email_verified_apply(*, user: User, email: str) -> bool:
    """The user verified `email`. Grants the signup credit once per canonical address, or queues
    it for an operator past the day's limit for the signup network or email domain.

    Only the account's own login address counts; True if the credit was granted now.
    """
    from billing import services as billing_services

    if email.strip().lower() != user.email.strip().lower():
        return False
    user_signup_setup(user=user)
    return bool(billing_services.signup_credit_grant(user=user))


# --- routing profiles --------------------------------------------------------------------------


def routing_profile_default(*, user: User) -> RoutingProfile:
    profile, _ = RoutingProfile.objects.get_or_create(user=user, name=DEFAULT_PROFILE_NAME)
    return profile


def _profile_check(*, user: User, name: str, fields: dict[str, Any], exclude_id=None) -> None:
    errors: dict[str, str] = {}
    if not name.strip():
        errors["name"] = "Give the profile a name."
    elif (
        RoutingProfile.objects.filter(user=user, name=name.strip()).exclude(id=exclude_id).exists()
    ):
        errors["name"] = "You already have a profile with this name."
    unknown = set(fields) - set(PROFILE_FIELDS)
    if unknown:
        errors["__all__"] = f"Unknown fields: {', '.join(sorted(unknown))}."
    for field in ("max_input_price_nusd", "max_output_price_nusd"):
        value = fields.get(field)
        if value is not None and value < 0:
            errors[field] = "A price cannot be negative."
    for field, ceiling in _PROFILE_INT_CEILINGS.items():
        value = fields.get(field)
        if value is not None and not 1 <= value <= ceiling:
            errors[field] = f"Give a whole number from 1 to {ceiling:,}."
    soft_ttft, hard_ttft = fields.get("soft_max_ttft_ms"), fields.get("hard_max_ttft_ms")
    if soft_ttft and hard_ttft and soft_ttft > hard_ttft and "soft_max_ttft_ms" not in errors:
        errors["soft_max_ttft_ms"] = "The preferred TTFT cannot be above the hard maximum."
    soft_tps, hard_tps = fields.get("soft_min_tps"), fields.get("hard_min_tps")
    if soft_tps and hard_tps and soft_tps < hard_tps and "soft_min_tps" not in errors:
        errors["soft_min_tps"] = "The preferred throughput cannot be below the hard minimum."
    both = set(fields.get("provider_only") or ()) & set(fields.get("provider_ignore") or ())
    if both:
        errors["provider_ignore"] = f"{', '.join(sorted(both))} cannot be both allowed and ignored."
    if fields.get("aliases_enabled") and fields.get("model_aliases") is not None:
        aliases = fields["model_aliases"]
        if not isinstance(aliases, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and k and v for k, v in aliases.items()
        ):
            errors["model_aliases"] = "Aliases map a requested name to a catalogue model id."
    if errors:
        raise ValidationError(errors)


@transaction.atomic
def routing_profile_create(*, user: User, name: str, **fields: Any) -> RoutingProfile:
    _profile_check(user=user, name=name, fields=fields)
    return RoutingProfile.objects.create(user=user, name=name.strip(), **fields)


@transaction.atomic
def routing_profile_update(*, profile: RoutingProfile, name: str, **fields: Any) -> RoutingProfile:
    _profile_check(user=profile.user, name=name, fields=fields, exclude_id=profile.id)
    if profile.name == DEFAULT_PROFILE_NAME and name.strip() != DEFAULT_PROFILE_NAME:
        raise ValidationError({"name": "The Default profile keeps its name."})
    profile.name = name.strip()
    for field, value in fields.items():
        setattr(profile, field, value)
    profile.save()
    return profile


@transaction.atomic
def routing_profile_delete(*, profile: RoutingProfile) -> None:
    """Refused for the Default profile and while live keys use it; revoked keys move to Default."""
    if profile.name == DEFAULT_PROFILE_NAME:
        raise ValidationError("The Default profile cannot be deleted.")
    if profile.access_keys.filter(revoked_at__isnull=True).exists():
        raise ValidationError(
            "Live keys use this profile: bind them elsewhere or revoke them first."
        )
    default = routing_profile_default(user=profile.user)
    profile.access_keys.update(profile=default)
    profile.delete()


# --- access keys -------------------------------------------------------------------------------


def _key_check(
    *,
    user: User,
    name: str,
    profile: RoutingProfile,
    requests_per_minute: int | None,
    tokens_per_minute: int | None,
    spend_limit_nusd: int | None,
    exclude_id: int | None = None,
) -> None:
    errors: dict[str, str] = {}
    if not name.strip():
        errors["name"] = "Give the key a name."
    elif (
        AccessKey.objects.filter(user=user, name=name.strip(), revoked_at__isnull=True)
        .exclude(id=exclude_id or 0)
        .exists()
    ):
        errors["name"] = "You already have a live key with this name."
    if profile.user_id != user.id:
        errors["profile"] = "Choose one of your routing profiles."
    plan = selectors.user_plan(user=user)
    for field, value, ceiling in (
        ("requests_per_minute", requests_per_minute, plan.requests_per_minute),
        ("tokens_per_minute", tokens_per_minute, plan.tokens_per_minute),
    ):
        if value is None:
            continue
        if value < 1:
            errors[field] = "A throttle must be at least 1."
        elif value > validation.MAX_THROTTLE_PER_MINUTE:
            errors[field] = f"A throttle can be at most {validation.MAX_THROTTLE_PER_MINUTE:,}."
        elif ceiling is not None and value > ceiling:
            errors[field] = f"Your {plan.name} plan allows at most {ceiling:,}."
    if spend_limit_nusd is not None and spend_limit_nusd <= 0:
        errors["spend_limit_nusd"] = "A spend limit must be above zero (leave it empty for none)."
    if errors:
        raise ValidationError(errors)


def access_key_create(
    *,
    user: User,
    name: str,
    profile: RoutingProfile | None = None,
    requests_per_minute: int | None = None,
    tokens_per_minute: int | None = None,
    spend_limit_nusd: int | None = None,
    secret: str | None = None,
) -> tuple[AccessKey, str]:
    """A new key and its secret, which is never stored and never shown again.

    `secret` is for the demo seed only (its key is derived from SECRET_KEY); everyone else gets
    a fresh `keys.key_generate()`.
    """
    if not selectors.email_is_verified(user=user):
        raise EmailNotVerified("Verify your email address to create access keys.")
    if profile is None:
        profile = routing_profile_default(user=user)
    _key_check(
        user=user,
        name=name,
        profile=profile,
        requests_per_minute=requests_per_minute,
        tokens_per_minute=tokens_per_minute,
        spend_limit_nusd=spend_limit_nusd,
    )
    if secret is not None and not keys.key_is_well_formed(secret):
        raise ValueError("A given secret must be a well-formed sk-df- key.")
    secret = secret or keys.key_generate()
    try:
        with transaction.atomic():
            key = AccessKey.objects.create(
                user=user,
                name=name.strip(),
                prefix=keys.key_lookup_prefix(secret),
                key_hash=keys.key_hash(secret),
                profile=profile,
                requests_per_minute=requests_per_minute,
                tokens_per_minute=tokens_per_minute,
                spend_limit_nusd=spend_limit_nusd,
            )
    except (
        IntegrityError
    ) as exc:  # a concurrent twin with the same name (or, astronomically, prefix)
        raise ValidationError({"name": "You already have a live key with this name."}) from exc
    return key, secret


@transaction.atomic
def access_key_update(
    *,
    key: AccessKey,
    name: str,
    profile: RoutingProfile,
    requests_per_minute: int | None,
    tokens_per_minute: int | None,
    spend_limit_nusd: int | None,
) -> AccessKey:
    if key.revoked_at is not None:
        raise ValidationError("A revoked key cannot be changed.")
    _key_check(
        user=key.user,
        name=name,
        profile=profile,
        requests_per_minute=requests_per_minute,
        tokens_per_minute=tokens_per_minute,
        spend_limit_nusd=spend_limit_nusd,
        exclude_id=key.id,
    )
    key.name = name.strip()
    key.profile = profile
    key.requests_per_minute = requests_per_minute
    key.tokens_per_minute = tokens_per_minute
    key.spend_limit_nusd = spend_limit_nusd
    key.save()
    return key


def access_key_revoke(*, key: AccessKey) -> AccessKey:
    """Idempotent. The gateway's key cache (DRAGONFLY_KEY_CACHE_SECONDS) bounds how long it lags."""
    AccessKey.objects.filter(id=key.id, revoked_at__isnull=True).update(revoked_at=timezone.now())
    key.refresh_from_db(fields=["revoked_at"])
    return key


def access_key_touch(*, key_id: int) -> None:
    last_used_touch(model=AccessKey, row_id=key_id, cache_name="key")


def last_used_touch(
    *, model: type[AccessKey | PersonalToken], row_id: int, cache_name: str
) -> None:
    """Record a credential's use, at most once a minute: a cache gate, then one conditional UPDATE.

    The UPDATE is a gate of its own (it writes only a value a minute old), so when the cache
    (Redis) cannot answer the request goes on without it: a Redis blink must not fail every API
    call over a last-used timestamp."""
    gate = f"accounts:{cache_name}-touch:{row_id}"
    try:
        if not cache.add(gate, 1, int(TOUCH_INTERVAL.total_seconds())):
            return
    except (RedisError, OSError) as exc:
        logger.warning("last-used gate unavailable (%r); updating without it", exc)
    now = timezone.now()
    model.objects.filter(id=row_id).filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - TOUCH_INTERVAL)
    ).update(last_used_at=now)


def plans_ensure() -> int:
    """Create any missing plan of the data migration's table (after a flush or an operator's delete).

    Returns how many were created.
    """
    table = import_module("accounts.migrations.0003_plans_seed").PLANS
    spend = import_module("accounts.migrations.0008_plan_spend_threshold").SPEND_THRESHOLDS
    created = 0
    for slug, name, rank, rpm, tpm, threshold, automatic in table:
        _, was_created = Plan.objects.get_or_create(
            slug=slug,
            defaults={
                "name": name,
                "rank": rank,
                "requests_per_minute": rpm,
                "tokens_per_minute": tpm,
                "min_lifetime_topup_nusd": threshold,
                "min_lifetime_spend_nusd": spend.get(slug, (0, threshold))[1],
                "automatic": automatic,
            },
        )
        created += was_created
    return created
