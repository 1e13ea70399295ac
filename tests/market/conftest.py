"""Market fixtures: the simulated upstream in a thread, the catalogue pointed at it, sellers, listings."""

import pytest
from celery import signals

from dragonfly.celery import app as celery_app
from market.demo import catalogue_seed
from market.models import CatalogModel
from simulator.testing import SimulatorThread
from tests.market.factories import seller_make


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


@pytest.fixture
def seller(catalogue):
    return seller_make()


@pytest.fixture
def other_seller(catalogue):
    return seller_make()
