import json

from accounts import keys, selectors, services
from accounts.models import Plan
from market import services as market_services


def test_the_auth_record_carries_everything_the_gateway_needs(buyer, providers):
    profile = services.routing_profile_create(
        user=buyer,
        name="Tight",
        max_input_price_nusd=400_000_000,
        max_output_price_nusd=None,
        soft_max_ttft_ms=500,
        hard_max_ttft_ms=2000,
        soft_min_tps=40,
        hard_min_tps=None,
        privacy_mode="trusted_only",
        provider_only=["deepseek"],
        provider_ignore=["minimax"],
        provider_order=["deepseek"],
        aliases_enabled=True,
        model_aliases={"gpt-4o": "deepseek/deepseek-chat"},
        default_model="deepseek/deepseek-chat",
        strict_models=True,
    )
    key, secret = services.access_key_create(
        user=buyer,
        name="gw",
        profile=profile,
        requests_per_minute=5,
        tokens_per_minute=1000,
        spend_limit_nusd=2_000_000_000,
    )
    market_services.terms_accept(user=buyer, audience="buyer", ip_address=None)

    record = selectors.access_key_auth_record(key_hash=keys.key_hash(secret))
    assert record == {
        "key_id": key.id,
        "user_id": buyer.id,
        "revoked": False,
        "email_verified": True,
        "buyer_terms_accepted": True,
        "plan": {
            "slug": "free",
            "requests_per_minute": 10,
            "tokens_per_minute": 40_000,
            "next": {
                "slug": "starter",
                "name": "Starter",
                "requests_per_minute": 60,
                "tokens_per_minute": 200_000,
                "missing_topups_nusd": 10_000_000_000,
                "missing_spend_nusd": 5_000_000_000,
            },
        },
        "key_requests_per_minute": 5,
        "key_tokens_per_minute": 1000,
        "spend_limit_nusd": 2_000_000_000,
        "key_spent_nusd": 0,
        "profile": {
            "id": profile.id,
            "strategy": "market-only",
            "max_input_price_nusd": 400_000_000,
            "max_output_price_nusd": None,
            "soft_max_ttft_ms": 500,
            "hard_max_ttft_ms": 2000,
            "soft_min_tps": 40,
            "hard_min_tps": None,
            "privacy_mode": "trusted_only",
            "provider_only": ["deepseek"],
            "provider_ignore": ["minimax"],
            "provider_order": ["deepseek"],
            "aliases_enabled": True,
            "model_aliases": {"gpt-4o": "deepseek/deepseek-chat"},
            "default_model": "deepseek/deepseek-chat",
            "strict_models": True,
        },
    }
    assert json.loads(json.dumps(record)) == record


def test_the_auth_record_is_none_for_an_unknown_hash(db):
    assert selectors.access_key_auth_record(key_hash=keys.key_hash(keys.key_generate())) is None


def test_the_auth_record_reports_an_unlimited_plan_as_none(buyer):
    buyer.plan_override = Plan.objects.get(slug="enterprise")
    buyer.save()
    _, secret = services.access_key_create(user=buyer, name="big")
    record = selectors.access_key_auth_record(key_hash=keys.key_hash(secret))
    assert record["plan"] == {
        "slug": "enterprise",
        "requests_per_minute": None,
        "tokens_per_minute": None,
        "next": None,
    }


def test_a_deactivated_users_keys_count_as_revoked(buyer):
    _, secret = services.access_key_create(user=buyer, name="k")
    buyer.is_active = False
    buyer.save()
    assert selectors.access_key_auth_record(key_hash=keys.key_hash(secret))["revoked"] is True


def test_the_auth_record_follows_a_lost_verification(buyer):
    from allauth.account.models import EmailAddress

    _, secret = services.access_key_create(user=buyer, name="k")
    EmailAddress.objects.filter(user=buyer).update(verified=False)
    assert (
        selectors.access_key_auth_record(key_hash=keys.key_hash(secret))["email_verified"] is False
    )
