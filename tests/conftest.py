"""Suite-wide fixtures. Tests run against real PostgreSQL and Redis (see the Makefile's TEST_ENV)."""

import pytest
from django.conf import settings


@pytest.fixture(autouse=True)
def _clean_redis():
    """Each test starts with an empty Redis database (the suite owns TEST_REDIS_URL's db)."""
    from dragonfly.redis import get_redis

    if not settings.REDIS_URL.startswith("fakeredis://"):
        get_redis().flushdb()
    yield


@pytest.fixture
def admin_client(admin_user):
    """pytest-django's admin_client, past the admin's second factor (tests/operators.py)."""
    from tests.operators import operator_client

    return operator_client(admin_user)
