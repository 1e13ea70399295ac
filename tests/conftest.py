"""Suite-wide fixtures. Tests run against real PostgreSQL and Redis (see the Makefile's TEST_ENV)."""

import psycopg
import pytest
from django.conf import settings


def _configure_test_connections() -> None:
    """Two rules for this process's PostgreSQL connections, never for the servers it starts
    (they read the environment, so nothing here may go there):

    - A pool of 40, not production's 10: asgiref's threads and the tests' own each keep a
      connection checked out until they end, and 10 ran out in a full run.
    - deadlock_timeout 10 s: a transactional test's flush TRUNCATEs table after table while a
      session server's routing refresh may be reading several, a lock cycle PostgreSQL breaks
      by cancelling whichever side checks first. Checking last here makes the servers' read
      the one cancelled; their refresh just runs again. (A superuser setting.)
    """
    db = settings.DATABASES["default"]
    if not db["ENGINE"].endswith("postgresql"):
        return
    options = db.setdefault("OPTIONS", {})
    if "pool" in options:
        options["pool"]["max_size"] = 40
    with psycopg.connect(
        host=db["HOST"],
        port=db["PORT"] or None,
        user=db["USER"],
        password=db["PASSWORD"],
        dbname="postgres",
        connect_timeout=10,
    ) as conn:
        row = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
    if row and row[0]:
        options["options"] = f"{options.get('options', '')} -c deadlock_timeout=10s".strip()


_configure_test_connections()
# The users this process makes get a cheap hash (tests/password_hashing.py); production's hashers
# stay listed after it, so a hash made by a server of the suite still verifies here.
settings.PASSWORD_HASHERS = [
    "tests.password_hashing.FastPBKDF2PasswordHasher",
    *settings.PASSWORD_HASHERS,
]


@pytest.fixture(autouse=True)
def _clean_redis():
    """Each test starts with an empty Redis database (the suite owns TEST_REDIS_URL's db)."""
    from redis_clients.clients import get_redis

    if not settings.REDIS_URL.startswith("fakeredis://"):
        get_redis().flushdb()
    yield


@pytest.fixture(autouse=True)
def _fresh_runtime():
    """Each test starts with no gateway runtime and empty process caches (gateway/runtime.py), and
    what it leaves open on an idle loop is closed after it."""
    from gateway import runtime

    runtime.reset()
    yield
    runtime.reset()


@pytest.fixture(autouse=True)
def _plans(request):
    """Database tests find the plans the migration created: a transactional test's flush removes them.

    Production code never re-creates them (accounts/checks.py reports a missing one); tests do, here.
    """
    uses_db = request.node.get_closest_marker("django_db") or {
        "db",
        "transactional_db",
        "django_db_reset_sequences",
    } & set(request.fixturenames)
    if uses_db:
        from accounts.checks import plans_required
        from accounts.models import Plan
        from accounts.services import plans_ensure

        request.getfixturevalue("_django_db_helper")
        if Plan.objects.count() < len(plans_required()):
            plans_ensure()
    yield


@pytest.fixture
def admin_client(admin_user):
    """pytest-django's admin_client, past the admin's second factor (tests/operators.py)."""
    from tests.operators import operator_client

    return operator_client(admin_user)
