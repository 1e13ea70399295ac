"""Accounts fixtures: users (verified or not), providers and catalogue models, top-ups via billing."""

import itertools

import pytest

from accounts.models import User
from market.models import CatalogModel, Provider
from tests.accounts.factories import user_make


@pytest.fixture
def make_user(db):
    """tests/accounts/factories.user_make, as a signup leaves a user (profile, credit)."""

    def make(email: str | None = None, *, verified: bool = True) -> User:
        return user_make(email, verified=verified, signup_setup=True)

    return make


@pytest.fixture
def buyer(make_user):
    return make_user("buyer@example.com")


@pytest.fixture
def other(make_user):
    return make_user("other@example.com")


@pytest.fixture
def buyer_client(client, buyer):
    client.force_login(buyer)
    return client


@pytest.fixture
def providers(db):
    deepseek, _ = Provider.objects.get_or_create(
        slug="deepseek", defaults={"name": "DeepSeek", "base_url": "http://127.0.0.1:9/ds"}
    )
    minimax, _ = Provider.objects.get_or_create(
        slug="minimax", defaults={"name": "MiniMax", "base_url": "http://127.0.0.1:9/mm"}
    )
    CatalogModel.objects.get_or_create(
        model_id="deepseek/deepseek-chat",
        defaults={
            "provider": deepseek,
            "upstream_name": "deepseek-chat",
            "list_input_nusd": 500_000_000,
            "list_output_nusd": 1_500_000_000,
        },
    )
    return [deepseek, minimax]


@pytest.fixture
def topup():
    """Credit a paid top-up through billing's real fulfilment path."""
    from billing import services as billing_services

    counter = itertools.count(1)

    def pay(user: User, cents: int) -> None:
        record = billing_services.topup_create(user=user, amount_nusd=cents * 10_000_000)
        session_id = f"cs_test_{user.id}_{next(counter)}"
        billing_services.topup_session_attach(topup=record, session_id=session_id)
        assert billing_services.topup_fulfil(
            session_id=session_id,
            topup_id=str(record.id),
            amount_total_cents=cents,
            currency="usd",
        )

    return pay
