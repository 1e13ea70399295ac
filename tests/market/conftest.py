"""Market fixtures: the simulated upstream in a thread, the catalogue pointed at it, sellers, listings."""

import itertools

import pytest
from allauth.account.models import EmailAddress
from celery import signals

from accounts.models import User
from dragonfly.celery import app as celery_app
from market import services
from market.demo import catalogue_seed
from market.models import CatalogModel, ListingStatus, Provider
from simulator.testing import SimulatorThread

_emails = itertools.count(1)


@pytest.fixture(scope="session")
def sim():
    with SimulatorThread() as running:
        yield running


@pytest.fixture(autouse=True)
def _eager_celery():
    """No worker in tests: tasks run inline, as in the embedded default."""
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


@pytest.fixture
def task_calls():
    """Every Celery task run during the test, as (task name, args, kwargs)."""
    seen = []

    def record(sender=None, args=None, kwargs=None, **_):
        seen.append((sender.name, args, kwargs))

    signals.task_prerun.connect(record, weak=False)
    yield seen
    signals.task_prerun.disconnect(record)


@pytest.fixture
def catalogue(sim, db):
    catalogue_seed(upstream_url=sim.url)
    return {m.model_id: m for m in CatalogModel.objects.all()}


def make_user(*, verified=True, seller_terms=False, email=None):
    user = User.objects.create_user(email or f"user{next(_emails)}@example.com", "pw-123456789")
    EmailAddress.objects.create(user=user, email=user.email, verified=verified, primary=True)
    if seller_terms:
        services.terms_ensure_v1()
        services.terms_accept(user=user, audience="seller", ip_address="127.0.0.1")
    return user


@pytest.fixture
def seller(catalogue):
    return make_user(seller_terms=True)


@pytest.fixture
def other_seller(catalogue):
    return make_user(seller_terms=True)


def make_listing(
    seller,
    *,
    key="sim-good",
    provider="deepseek",
    models=("deepseek/deepseek-chat",),
    percent=80,
    status=ListingStatus.ACTIVE,
    name="capacity",
    verify=False,
):
    offers = []
    for model_id in models:
        model = CatalogModel.objects.get(model_id=model_id)
        offers.append(
            services.OfferInput(
                model=model,
                ask_input_nusd=model.list_input_nusd * percent // 100,
                ask_output_nusd=model.list_output_nusd * percent // 100,
            )
        )
    return services.listing_create(
        seller=seller,
        provider=Provider.objects.get(slug=provider),
        name=name,
        upstream_key=key,
        offers=offers,
        status=status,
        verify=verify,
    )
