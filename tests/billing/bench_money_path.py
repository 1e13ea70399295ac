"""Money path micro-benchmark (not part of the suite: run it explicitly).

    make pytest PYTEST_ARGS="tests/billing/bench_money_path.py -q -s"

For each implementation available on the database (the PostgreSQL functions, the ORM path):
statements per hold, per settle and per void (django CaptureQueriesContext), then the wall time of
N sequential hold + settle pairs (p50, p90, p99 and the mean CPU time of this process per pair).
"""

import os
import statistics
import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext, override_settings

from billing import services
from tests.accounts.factories import user_make
from tests.billing.factories import fund, settlement_make
from tests.market.factories import listing_row_make

pytestmark = pytest.mark.django_db(transaction=True)

PAIRS = int(os.environ.get("MONEY_BENCH_PAIRS", "500"))


@pytest.mark.parametrize("fastpath", [True, False], ids=["sql", "orm"])
def test_money_path_bench(fastpath, capsys):
    if fastpath and connection.vendor != "postgresql":
        pytest.skip("the SQL fast path needs PostgreSQL")
    buyer, seller = user_make(verified=None), user_make(verified=None)
    listing = listing_row_make(seller=seller)
    fund(buyer, "1000")
    with override_settings(DRAGONFLY_BILLING_SQL_FASTPATH=fastpath):
        # Warm up: accounts exist, caches loaded, first-statement costs paid.
        for i in range(5):
            rid = f"warm-{i}"
            services.hold_place(request_id=rid, user_id=buyer.pk, amount_nusd=10_000_000)
            services.request_settle(
                settlement=settlement_make(
                    buyer=buyer, seller=seller, listing=listing, request_id=rid
                )
            )
        with CaptureQueriesContext(connection) as hold_q:
            services.hold_place(request_id="count", user_id=buyer.pk, amount_nusd=10_000_000)
        s = settlement_make(buyer=buyer, seller=seller, listing=listing, request_id="count")
        with CaptureQueriesContext(connection) as settle_q:
            services.request_settle(settlement=s)
        services.hold_place(request_id="void", user_id=buyer.pk, amount_nusd=10_000_000)
        with CaptureQueriesContext(connection) as void_q:
            services.hold_void(request_id="void", reason="bench")

        walls, cpu_start = [], time.process_time()
        for i in range(PAIRS):
            rid = f"bench-{i}"
            s = settlement_make(buyer=buyer, seller=seller, listing=listing, request_id=rid)
            t0 = time.perf_counter()
            services.hold_place(request_id=rid, user_id=buyer.pk, amount_nusd=10_000_000)
            services.request_settle(settlement=s)
            walls.append(time.perf_counter() - t0)
        cpu = (time.process_time() - cpu_start) / PAIRS
    q = statistics.quantiles(walls, n=100)
    with capsys.disabled():
        print(
            f"\n[money path: {'sql' if fastpath else 'orm'}] statements: hold={len(hold_q)} "
            f"settle={len(settle_q)} void={len(void_q)}; {PAIRS} hold+settle pairs: "
            f"p50={q[49] * 1000:.2f} ms p90={q[89] * 1000:.2f} ms p99={q[98] * 1000:.2f} ms "
            f"python CPU={cpu * 1000:.2f} ms/pair"
        )
