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


def _plan_measures(*, user: User) -> tuple[int, int]:
    """(lifetime top-ups, lifetime spend) in nano-USD: the top-ups' two sums and one column of the
    wallet row (billing keeps spend on it at each settlement), never an aggregate of usage."""
    from billing import selectors as billing_selectors

    return (
        billing_selectors.lifetime_topups_nusd(user=user),
        billing_selectors.lifetime_spent_nusd(user=user),
    )


def _plan_reached(plans: list[Plan], *, topups_nusd: int, spent_nusd: int) -> Plan:
    """THE plan rule: the highest automatic plan that either measure reaches (`plans` by rank);
    with none reached, the lowest plan."""
    reached = [
        plan
        for plan in plans
        if plan.automatic
        and (
            topups_nusd >= plan.min_lifetime_topup_nusd
            or spent_nusd >= plan.min_lifetime_spend_nusd
        )
    ]
    if reached:
        return reached[-1]
    if plans:
        return plans[0]
    # The migration creates them; accounts.checks reports an emptied table.
    raise Plan.DoesNotExist("No plan exists: see `manage.py check --database default`.")


@dataclass(frozen=True)
class PlanStatus:
    plan: Plan
    overridden: bool
    lifetime_topups_nusd: int
    lifetime_spent_nusd: int
    next_plan: Plan | None  # the next automatic plan, None at the top or under an override
    next_missing_topups_nusd: int  # more top-ups that unlock next_plan (0 without one)
    next_missing_spend_nusd: int  # or this much more spend


def plan_status(*, user: User) -> PlanStatus:
    """The user's plan and the next step with what unlocks it, for the gateway's auth record,
    GET /v1/key, /api/account/ and the dashboard. Under an override nothing else is read."""
    if user.plan_override_id:
        return PlanStatus(user.plan_override, True, 0, 0, None, 0, 0)  # type: ignore[arg-type]
    topups, spent = _plan_measures(user=user)
    plans = list(plan_list())
    plan = _plan_reached(plans, topups_nusd=topups, spent_nusd=spent)
    # Every automatic plan above the one reached is reached by neither measure: both figures > 0.
    following = [p for p in plans if p.automatic and p.rank > plan.rank]
    next_plan = following[0] if following else None
    if next_plan is None:
        return PlanStatus(plan, False, topups, spent, None, 0, 0)
    return PlanStatus(
        plan,
        False,
        topups,
        spent,
        next_plan,
        next_plan.min_lifetime_topup_nusd - topups,
        next_plan.min_lifetime_spend_nusd - spent,
    )


def plan_record(plan: Plan) -> dict[str, Any]:
    return {
        "slug": plan.slug,
        "name": plan.name,
        "requests_per_minute": plan.requests_per_minute,
        "tokens_per_minute": plan.tokens_per_minute,
    }


def next_plan_record(status: PlanStatus) -> dict[str, Any] | None:
    """The next step and what unlocks it (either figure alone does), as /v1/key, /api/account/ and
    the gateway's auth record show it; None at the top or under an override."""
    if status.next_plan is None:
        return None
    return {
        **plan_record(status.next_plan),
        "missing_topups_nusd": status.next_missing_topups_nusd,
        "missing_spend_nusd": status.next_missing_spend_nusd,
    }


def user_plan(*, user: User) -> Plan:
    """The operator override, else the highest automatic plan lifetime top-ups or spend reach."""
    return plan_status(user=user).plan


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

    One query for the key with its user, plan override and profile; plus the verification and
    Trading Terms reads and, without an override, the plan's: lifetime top-ups (two sums),
    lifetime spend (one column of the wallet row) and the plans table. A deactivated user's keys
    count as revoked. The plan is as fresh as the gateway's cache of this record
    (DRAGONFLY_KEY_CACHE_SECONDS): a step reached by a settlement applies within that time.
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
    status = plan_status(user=user)
    plan = status.plan
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
            "next": next_plan_record(status),
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


def playground_models(*, modality: str = "chat") -> list[tuple[str, bool]]:
    """Every active model of `modality` in the catalogue as (model id, live), the live ones first."""
    from market import selectors as market_selectors

    live = _live_models(modality)
    ids = {m["model_id"] for m in market_selectors.catalogue_list() if m["modality"] == modality}
    return sorted(
        ((model_id, model_id in live) for model_id in ids), key=lambda m: (not m[1], m[0])
    )


def playground_provider_slugs() -> list[str]:
    """The providers of the active catalogue: what the provider headers may name."""
    from market import selectors as market_selectors

    return sorted({m["provider_slug"] for m in market_selectors.catalogue_list()})


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
