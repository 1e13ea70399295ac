"""The reaper settles what a dead gateway process left (gateway/reaper.py), exactly once, even when
several reapers find it at once, and never touches a live process's requests. Real PostgreSQL
commits and Redis; the crash itself, on a real server, is in tests/e2e/test_e2e_faults.py."""

import dataclasses
import threading
from datetime import timedelta

import orjson
import pytest
from django.utils import timezone

from billing import services
from billing.checks import ledger_violations
from billing.models import Hold, UsageRecord
from gateway import billing_calls, reaper
from gateway.models import GatewayProcess, StreamCheckpoint
from redis_clients.clients import get_redis
from tests.accounts.factories import user_make
from tests.billing.factories import fund, settlement_make
from tests.market.factories import listing_row_make

pytestmark = pytest.mark.django_db(transaction=True)

DEAD, LIVE = "dead0001", "a1ive002"


def _process(process_id: str, *, seconds_ago: float) -> None:
    seen = timezone.now() - timedelta(seconds=seconds_ago)
    GatewayProcess.objects.create(
        id=process_id, host="h", pid=1, started_at=seen, heartbeat_at=seen
    )


@pytest.fixture
def left_behind(settings):
    """A process dead for a minute and a live one, each with requests in flight."""
    # Dead by this test's half-hour lease, not by the hour of the e2e servers that share the
    # database (their lease loops reap too; tests/e2e/conftest.py).
    settings.DRAGONFLY_PROCESS_LEASE_SECONDS = 1800
    buyer, seller = user_make(verified=None), user_make(verified=None)
    listing = listing_row_make(seller=seller)
    fund(buyer, "1")
    _process(DEAD, seconds_ago=2000)
    _process(LIVE, seconds_ago=1)
    ids = {
        name: f"req_{owner}{n:016x}"
        for n, (name, owner) in enumerate(
            [("streaming", DEAD), ("waiting", DEAD), ("done", DEAD), ("live", LIVE)]
        )
    }
    for request_id in ids.values():
        services.hold_place(request_id=request_id, user_id=buyer.pk, amount_nusd=100_000_000)

    def checkpoint(name: str, output_units: int) -> None:
        settlement = settlement_make(
            buyer=buyer,
            seller=seller,
            listing=listing,
            request_id=ids[name],
            output_units=output_units,
            outcome="client_disconnected",
        )
        StreamCheckpoint.objects.create(
            request_id=ids[name],
            process_id=ids[name][4:12],
            settlement=dataclasses.asdict(settlement),
            updated_at=timezone.now(),
        )
        return settlement

    checkpoint("streaming", 40)
    done = checkpoint("done", 10)
    services.request_settle(settlement=dataclasses.replace(done, output_units=25))  # it ended
    checkpoint("live", 30)
    redis = get_redis()
    redis.delete(f"cap:inflight:{listing.pk}")
    far = timezone.now().timestamp() + 600
    redis.zadd(f"cap:inflight:{listing.pk}", {f"{DEAD}:a": far, f"{DEAD}:b": far, f"{LIVE}:c": far})
    yield buyer, listing, ids
    redis.delete(f"cap:inflight:{listing.pk}")


def test_a_dead_processs_streams_are_billed_as_checkpointed_and_its_other_holds_voided(
    left_behind,
):
    _, listing, ids = left_behind

    reaped = reaper.reap_dead()

    assert (reaped.processes, reaped.settled, reaped.voided, reaped.slots) == (1, 1, 1, 2)
    streamed = UsageRecord.objects.get(request_id=ids["streaming"])
    assert (streamed.output_units, streamed.outcome) == (40, "client_disconnected")
    assert UsageRecord.objects.get(request_id=ids["done"]).output_units == 25  # not billed twice
    waiting = Hold.objects.get(request_id=ids["waiting"])
    assert (waiting.status, waiting.void_reason) == ("voided", reaper.VOID_REASON)
    # The live process is untouched: its hold, its checkpoint, its lease and its slot.
    assert Hold.objects.get(request_id=ids["live"]).status == "active"
    assert not UsageRecord.objects.filter(request_id=ids["live"]).exists()
    ours = StreamCheckpoint.objects.filter(process_id__in=[DEAD, LIVE])
    assert list(ours.values_list("request_id", flat=True)) == [ids["live"]]
    leases = GatewayProcess.objects.filter(id__in=[DEAD, LIVE])
    assert list(leases.values_list("id", flat=True)) == [LIVE]
    assert get_redis().zrange(f"cap:inflight:{listing.pk}", 0, -1) == [f"{LIVE}:c"]
    assert reaper.reap_dead().processes == 0  # nothing left to do
    assert ledger_violations() == []


def test_reapers_that_find_the_same_dead_process_at_once_settle_it_once(left_behind):
    buyer, _, _ = left_behind
    start = threading.Barrier(4)
    results: list = []

    def reap() -> None:
        from django.db import connection

        start.wait()
        try:
            results.append(reaper.reap_dead())
        finally:
            connection.close()

    threads = [threading.Thread(target=reap) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert sum(r.processes for r in results) == 1
    assert sum(r.settled for r in results) == 1 and sum(r.voided for r in results) == 1
    assert UsageRecord.objects.filter(buyer=buyer).count() == 2  # "streaming" and "done"
    assert ledger_violations() == []


def test_a_process_never_reaps_itself_nor_a_peer_within_its_lease(left_behind, settings):
    assert reaper.reap_dead(exclude=DEAD).processes == 0
    settings.DRAGONFLY_PROCESS_LEASE_SECONDS = 3000  # 2,000 s of silence are within this lease
    assert reaper.reap_dead().processes == 0
    assert Hold.objects.filter(status="active").count() == 3


def test_a_dead_processs_settlement_that_never_reached_the_database_is_settled_not_voided(
    left_behind,
):
    """The process answered, could not settle (database unreachable) and died while retrying:
    billing_calls.py had kept the settlement in Redis, and the reaper settles it as it was."""
    buyer, listing, ids = left_behind
    answered = settlement_make(
        buyer=buyer, seller=listing.seller, listing=listing, request_id=ids["waiting"]
    )
    redis = get_redis()
    redis.hset(
        billing_calls.unsettled_key(DEAD),
        answered.request_id,
        orjson.dumps(dataclasses.asdict(answered)),
    )

    reaped = reaper.reap_dead()

    assert (reaped.settled, reaped.voided) == (2, 0)
    record = UsageRecord.objects.get(request_id=ids["waiting"])
    assert (record.outcome, record.output_units) == ("completed", answered.output_units)
    assert not redis.exists(billing_calls.unsettled_key(DEAD))
    assert ledger_violations() == []


def test_a_dead_processs_balance_lease_settles_what_it_covered_then_is_voided(settings):
    """A crash with a balance lease (gateway/balance_leases.py): the stream it checkpointed and the
    settlement it kept, both drawn from the lease, are settled against it, then the rest voided."""
    settings.DRAGONFLY_PROCESS_LEASE_SECONDS = 1800
    buyer, seller = user_make(verified=None), user_make(verified=None)
    listing = listing_row_make(seller=seller)
    fund(buyer, "1")
    _process(DEAD, seconds_ago=2000)
    lease_id = f"req_{DEAD}lease{0:016x}"
    services.hold_place(request_id=lease_id, user_id=buyer.pk, amount_nusd=100_000_000)
    streaming, kept = (
        settlement_make(
            buyer=buyer,
            seller=seller,
            listing=listing,
            request_id=f"req_{DEAD}{n:016x}",
            lease_id=lease_id,
            outcome=outcome,
        )
        for n, outcome in ((1, "client_disconnected"), (2, "completed"))
    )
    StreamCheckpoint.objects.create(
        request_id=streaming.request_id,
        process_id=DEAD,
        settlement=streaming.as_dict(),
        updated_at=timezone.now(),
    )
    redis = get_redis()
    redis.hset(billing_calls.unsettled_key(DEAD), kept.request_id, orjson.dumps(kept.as_dict()))

    reaped = reaper.reap_dead()

    assert (reaped.processes, reaped.settled, reaped.voided) == (1, 2, 1)
    debits = UsageRecord.objects.filter(buyer=buyer).values_list("buyer_debit_nusd", "overrun_nusd")
    assert sorted(debits) == [(820_000, 0)] * 2  # each covered by the lease
    lease = Hold.objects.get(request_id=lease_id)
    assert (lease.status, lease.amount_nusd) == ("voided", 100_000_000 - 2 * 820_000)
    wallet = services.account_for_user(user_id=buyer.pk, kind="wallet")
    wallet.refresh_from_db()
    assert (wallet.balance_nusd, wallet.held_nusd) == (1_000_000_000 - 2 * 820_000, 0)
    assert not redis.exists(billing_calls.unsettled_key(DEAD))
    assert ledger_violations() == []
