"""The routing table's load yields to a lock rather than wait on it: when its reads meet a
TRUNCATE or a migration's lock in the other order, PostgreSQL's deadlock check would otherwise
pick a victim after a second, and it picked the TRUNCATE of the test suite's flush (a CI failure
seen once). The load gives up after routing.LOCK_TIMEOUT_MS; the previous table serves on."""

import threading

import psycopg
import pytest
from django.db import OperationalError, connection

from gateway import routing

pytestmark = pytest.mark.django_db(transaction=True)


def _conninfo() -> str:
    s = connection.settings_dict
    return psycopg.conninfo.make_conninfo(
        dbname=s["NAME"],
        user=s.get("USER") or "postgres",
        password=s.get("PASSWORD") or None,
        host=s.get("HOST") or "127.0.0.1",
        port=s.get("PORT") or 5432,
    )


def test_a_load_that_meets_a_held_lock_gives_up_instead_of_waiting_for_it():
    locked, release = threading.Event(), threading.Event()

    def hold_the_lock():
        with psycopg.connect(_conninfo()) as other, other.transaction():
            other.execute("LOCK TABLE market_listing IN ACCESS EXCLUSIVE MODE")
            locked.set()
            release.wait(30)  # held until the load has ended, one way or the other

    holder = threading.Thread(target=hold_the_lock)
    holder.start()
    try:
        assert locked.wait(10)
        with pytest.raises(OperationalError, match="lock timeout"):
            routing._load()
    finally:
        release.set()
        holder.join(30)
    assert routing._load().candidates == {}  # the lock gone, the next load reads as before
