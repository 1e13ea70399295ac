"""200 holds against one $1 wallet from several processes at once: exactly what the balance allows."""

import multiprocessing
import threading
import time

import pytest
from django.conf import settings
from django.db import connections

from billing import selectors
from billing.checks import ledger_violations
from billing.models import Hold
from tests.accounts.factories import user_make
from tests.billing.factories import fund

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("billing_impl")]

PROCESSES = 8
HOLDS = 200
HOLD_NUSD = 30_000_000  # $0.03: a $1 wallet admits exactly 33


def _worker(db_name, user_id, request_ids, barrier, results):
    """Runs in a forked child: its own database connection to the test database."""
    import django

    django.setup()
    settings.DATABASES["default"]["NAME"] = db_name
    connections.close_all()
    from billing import services
    from billing.errors import InsufficientBalance

    admitted = refused = 0
    barrier.wait()
    for request_id in request_ids:
        try:
            services.hold_place(request_id=request_id, user_id=user_id, amount_nusd=HOLD_NUSD)
            admitted += 1
        except InsufficientBalance:
            refused += 1
    connections.close_all()
    results.put((admitted, refused))


def test_concurrent_holds_from_processes_never_overdraw(capsys, billing_impl):
    buyer = user_make(verified=None)
    fund(buyer, "1")
    db_name = settings.DATABASES["default"]["NAME"]
    assert db_name.startswith("test_")
    connections.close_all()  # never share a connection with forked children
    connections["default"].close_pool()  # nor the pool's idle ones: each child makes its own

    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(PROCESSES)
    results = ctx.Queue()
    ids = [f"mp-{i}" for i in range(HOLDS)]
    procs = [
        ctx.Process(target=_worker, args=(db_name, buyer.pk, ids[i::PROCESSES], barrier, results))
        for i in range(PROCESSES)
    ]
    started = time.perf_counter()
    for p in procs:
        p.start()
    # While the children race, a watcher in this process samples the wallet's available balance
    # (balance - held) as committed, to report its lowest point.
    done = threading.Event()
    samples: list[int] = []

    def watch():
        try:
            while not done.is_set():
                with connections["default"].cursor() as cursor:
                    cursor.execute(
                        "SELECT balance_nusd - held_nusd FROM billing_ledgeraccount "
                        "WHERE user_id = %s AND kind = 'wallet'",
                        [buyer.pk],
                    )
                    samples.append(cursor.fetchone()[0])
        finally:
            connections.close_all()

    watcher = threading.Thread(target=watch)
    watcher.start()
    outcomes = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    elapsed = time.perf_counter() - started
    done.set()
    watcher.join()

    admitted = sum(a for a, _ in outcomes)
    refused = sum(r for _, r in outcomes)
    with capsys.disabled():
        print(
            f"\n[hold concurrency, {billing_impl}] {PROCESSES} processes, {HOLDS} holds of $0.03 on a $1 wallet: "
            f"admitted={admitted} (expected 33) refused={refused} "
            f"min available={min(samples)} nusd over {len(samples)} samples elapsed={elapsed:.2f}s"
        )
    assert all(p.exitcode == 0 for p in procs)
    assert (admitted, refused) == (33, 167)
    assert len(samples) > 1
    assert min(samples) >= 0
    summary = selectors.wallet_summary(user=buyer)
    assert summary["balance_nusd"] == 1_000_000_000
    assert summary["held_nusd"] == 33 * HOLD_NUSD
    assert summary["available_nusd"] == 10_000_000
    assert Hold.objects.filter(status="active").count() == 33
    assert ledger_violations() == []
