"""Reads for accounts: the gateway's key record, a user's plan, keys and profiles, dashboard figures."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from allauth.account.models import EmailAddress
from django.db.models import QuerySet

from accounts.models import AccessKey, Plan, RoutingProfile, User

BUYER = "buyer"
# The seed's examples, used when nothing of that modality is live in the market.
FALLBACK_MODELS = {
    "chat": "deepseek/deepseek-chat",
    "speech": "minimax/speech-02-hd",
    "rerank": "jina/jina-reranker-v2-base-multilingual",
    "embedding": "minimax/embo-01",
}


def email_is_verified(*, user: User) -> bool:
    return EmailAddress.objects.filter(user=user, email__iexact=user.email, verified=True).exists()


def _lifetime_topups_nusd(*, user: User) -> int:
    from billing import selectors as billing_selectors

    return int(billing_selectors.wallet_summary(user=user)["lifetime_topups_nusd"])


def user_plan(*, user: User) -> Plan:
    """The operator override, else the highest automatic plan the lifetime top-ups reach."""
    if user.plan_override_id:
        return user.plan_override  # type: ignore[return-value]
    lifetime = _lifetime_topups_nusd(user=user)
    plan = (
        Plan.objects.filter(automatic=True, min_lifetime_topup_nusd__lte=lifetime)
        .order_by("-rank")
        .first()
    )
    if plan is None:
        plan = Plan.objects.order_by("rank").first()
    if plan is None:  # the migration creates them; accounts.checks reports an emptied table
        raise Plan.DoesNotExist("No plan exists: see `manage.py check --database default`.")
    return plan


@dataclass(frozen=True)
class PlanStatus:
    plan: Plan
    overridden: bool
    lifetime_topups_nusd: int
    next_plan: Plan | None  # the next automatic plan, None at the top or under an override
    next_missing_nusd: int  # top-ups still needed to unlock next_plan


def plan_status(*, user: User) -> PlanStatus:
    lifetime = _lifetime_topups_nusd(user=user)
    plan = user_plan(user=user)
    overridden = bool(user.plan_override_id)
    next_plan = None
    if not overridden:
        next_plan = Plan.objects.filter(automatic=True, rank__gt=plan.rank).order_by("rank").first()
    missing = max(0, next_plan.min_lifetime_topup_nusd - lifetime) if next_plan else 0
    return PlanStatus(plan, overridden, lifetime, next_plan, missing)


def plan_list() -> QuerySet[Plan]:
    return Plan.objects.order_by("rank")


def access_key_list(*, user: User) -> QuerySet[AccessKey]:
    return AccessKey.objects.filter(user=user).select_related("profile").order_by("-created_at")


def access_key_get(*, user: User, key_id: int) -> AccessKey | None:
    """The user's own key, or None (callers answer 404: another user's key does not exist)."""
    return access_key_list(user=user).filter(id=key_id).first()


def routing_profile_list(*, user: User) -> QuerySet[RoutingProfile]:
    return RoutingProfile.objects.filter(user=user).order_by("name")


def routing_profile_get(*, user: User, profile_id: int) -> RoutingProfile | None:
    return routing_profile_list(user=user).filter(id=profile_id).first()


def profile_record(profile: RoutingProfile) -> dict[str, Any]:
    return {
        "id": profile.id,
        "strategy": profile.strategy,
        "max_input_price_nusd": profile.max_input_price_nusd,
        "max_output_price_nusd": profile.max_output_price_nusd,
        "soft_max_ttft_ms": profile.soft_max_ttft_ms,
        "hard_max_ttft_ms": profile.hard_max_ttft_ms,
        "soft_min_tps": profile.soft_min_tps,
        "hard_min_tps": profile.hard_min_tps,
        "privacy_mode": profile.privacy_mode,
        "provider_only": list(profile.provider_only),
        "provider_ignore": list(profile.provider_ignore),
        "provider_order": list(profile.provider_order),
        "aliases_enabled": profile.aliases_enabled,
        "model_aliases": dict(profile.model_aliases),
        "default_model": profile.default_model,
        "strict_models": profile.strict_models,
    }


def access_key_auth_record(*, key_hash: str) -> dict | None:
    """What the gateway needs to admit a request, as a plain dict it can cache.

    One query for the key with its user, plan override and profile; plus the verification,
    Trading Terms and (without an override) lifetime top-up reads. A deactivated user's keys
    count as revoked.
    """
    from billing import selectors as billing_selectors
    from market import selectors as market_selectors

    key = (
        AccessKey.objects.select_related("user", "user__plan_override", "profile")
        .filter(key_hash=key_hash)
        .first()
    )
    if key is None:
        return None
    user = key.user
    plan = user_plan(user=user)
    return {
        "key_id": key.id,
        "user_id": user.id,
        "revoked": key.revoked_at is not None or not user.is_active,
        "email_verified": email_is_verified(user=user),
        "buyer_terms_accepted": bool(
            market_selectors.terms_accepted_current(user=user, audience=BUYER)
        ),
        "plan": {
            "slug": plan.slug,
            "requests_per_minute": plan.requests_per_minute,
            "tokens_per_minute": plan.tokens_per_minute,
        },
        "key_requests_per_minute": key.requests_per_minute,
        "key_tokens_per_minute": key.tokens_per_minute,
        "spend_limit_nusd": key.spend_limit_nusd,
        # Settled spend so far, read only when there is a limit to hold it against.
        "key_spent_nusd": 0
        if key.spend_limit_nusd is None
        else billing_selectors.key_spent_nusd(access_key_id=key.id),
        "profile": profile_record(key.profile),
    }


# Health states in which the router still sends traffic (docs/health.md); the others are skipped.
_ROUTABLE_HEALTH = {"healthy", "degraded", "unknown"}


def _live_models(modality: str) -> dict[str, int]:
    """Model id -> its cheapest ask (input + output), for the models the router would use now."""
    from market import selectors as market_selectors

    cheapest: dict[str, int] = {}
    for model_id, candidates in market_selectors.routing_table().items():
        prices = [
            c.ask_input_nusd + c.ask_output_nusd
            for c in candidates
            if c.modality == modality and c.health in _ROUTABLE_HEALTH and not c.daily_cap_reached
        ]
        if prices:
            cheapest[model_id] = min(prices)
    return cheapest


def playground_models() -> list[tuple[str, bool]]:
    """Every active chat model of the catalogue as (model id, live), the live ones first."""
    from market import selectors as market_selectors

    live = _live_models("chat")
    ids = {m["model_id"] for m in market_selectors.catalogue_list() if m["modality"] == "chat"}
    return sorted(
        ((model_id, model_id in live) for model_id in ids), key=lambda m: (not m[1], m[0])
    )


def quickstart_model(*, modality: str = "chat") -> tuple[str, bool]:
    """(model id, live) for the Quick start's examples.

    Live means at least one active listing that the router would use right now: not cooling down,
    not suspended, not past its seller's daily cap. The seed's example model wins when it is live;
    otherwise the live model with the cheapest offer; with nothing live, the seed's example.
    """
    fallback = FALLBACK_MODELS[modality]
    cheapest = _live_models(modality)
    if fallback in cheapest:
        return fallback, True
    if cheapest:
        return min(cheapest, key=lambda model_id: (cheapest[model_id], model_id)), True
    return fallback, False
