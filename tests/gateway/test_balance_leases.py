"""Balance leases (gateway/balance_leases.py, billing_calls.py): a busy buyer's requests draw their
worst case from one hold per process instead of placing their own.

The books alone first (no I/O), then through billing_calls on real PostgreSQL: who gets a lease,
what every request draws and settles, what is voided when, and that two event loops (two
processes' worth of leases) racing one wallet to empty never let a request go uncovered."""

import asyncio
import threading

import pytest
from asgiref.sync import sync_to_async
from django.db import connection

from billing import selectors
from billing.checks import ledger_violations
from billing.models import AccountKind, Hold, LedgerAccount, UsageRecord
from billing.money import usd_to_nusd
from gateway import background, balance_leases, billing_calls, runtime
from gateway.errors import GatewayError
from tests.accounts.factories import user_make
from tests.billing.factories import fund, settlement_make
from tests.market.factories import listing_row_make

W = 1_000_000  # a request's worst case: $0.001


# ------------------------------------------------------------------------------ the books


@pytest.fixture
def books(settings):
    settings.DRAGONFLY_BALANCE_LEASE_REQUESTS = 4
    settings.DRAGONFLY_BALANCE_LEASE_SECONDS = 5
    return balance_leases.Leases()


def test_a_buyers_second_request_within_a_second_wants_a_lease(books):
    assert not books.wants(7, now=100.0)  # the first: a hold of its own
    assert books.wants(7, now=100.5)
    assert not books.wants(7, now=102.0)  # a pause: the next one holds on its own again
    assert not books.wants(8, now=102.0)  # per buyer


def test_a_refused_lease_is_not_asked_for_again_within_a_leases_lifetime(books):
    books.wants(7, now=100.0)
    books.refused(7, now=100.1)
    assert not books.wants(7, now=104.5)
    assert books.wants(7, now=105.2)


def test_draws_take_what_the_lease_covers_beyond_the_requests_in_flight(books):
    books.placed(7, "req_x1lease", balance_leases.size_for(W), now=100.0)  # covers 4 W
    drawn = [books.draw(f"r{n}", 7, W, now=100.1) for n in range(5)]
    assert drawn == ["req_x1lease"] * 4 + [None]  # the fifth retired it
    assert 7 not in books.current
    assert books.take_ended() == []  # four requests still in flight on it
    for n in range(3):
        assert books.done(f"r{n}", debit_nusd=W // 2)
    assert books.take_ended() == []
    assert books.done("r3", debit_nusd=None)  # not known: counted as the whole draw
    (ended,) = books.take_ended()
    assert (ended.hold_id, ended.remaining, ended.in_flight) == ("req_x1lease", 3 * W // 2, 0)
    assert not books.done("r3", debit_nusd=0)  # a draw ends once


def test_a_released_draw_goes_back_to_the_lease(books):
    books.placed(7, "req_x1lease", 2 * W, now=100.0)
    assert books.draw("a", 7, 2 * W, now=100.0) == "req_x1lease"
    assert books.draw("b", 7, W, now=100.0) is None  # retired: nothing left beyond "a"
    books.placed(7, "req_x2lease", 2 * W, now=100.0)
    assert books.done("a", debit_nusd=0)  # "a" found every listing full: released
    (ended,) = books.take_ended()
    assert (ended.hold_id, ended.remaining) == ("req_x1lease", 2 * W)


def test_a_lease_takes_no_draws_after_its_time_and_the_sweep_ends_it(books):
    books.placed(7, "req_x1lease", 4 * W, now=100.0)
    assert books.draw("a", 7, W, now=104.9) == "req_x1lease"
    assert books.draw("b", 7, W, now=105.0) is None
    books.done("a", debit_nusd=W)
    assert [lease.hold_id for lease in books.take_ended()] == ["req_x1lease"]
    books.placed(7, "req_x2lease", 4 * W, now=200.0)
    books.sweep(now=204.0)
    assert books.take_ended() == []
    books.sweep(now=205.0)  # its buyer stopped sending: ended with nothing in flight
    assert [lease.hold_id for lease in books.take_ended()] == ["req_x2lease"]
    assert books.current == {} and books.seen == {}


def test_a_leases_size_is_bounded_by_the_largest_amount():
    from billing.money import MAX_AMOUNT_NUSD

    assert balance_leases.size_for(MAX_AMOUNT_NUSD) == MAX_AMOUNT_NUSD


# ------------------------------------------------------------------ through billing_calls


@pytest.fixture
def wallet(transactional_db, settings):
    if connection.vendor != "postgresql":
        pytest.skip("balance leases run on the money fast path (PostgreSQL)")
    settings.DRAGONFLY_BALANCE_LEASE_REQUESTS = 8
    settings.DRAGONFLY_BALANCE_LEASE_HEADROOM = 10
    buyer, seller = user_make(verified=None), user_make(verified=None)
    listing = listing_row_make(seller=seller)
    fund(buyer, "1")  # $1: a lease of 8 W needs 80 W = $0.08 available
    return buyer, seller, listing


async def _request(wallet, request_id: str, *, hold: int = W, cost_units: int = 1000) -> str | None:
    """One request's money calls as trade.run makes them: the hold of its worst case, then its
    settlement (`cost_units` input tokens at $0.27 / M)."""
    buyer, seller, listing = wallet
    lease_id = await billing_calls.hold(request_id=request_id, user_id=buyer.pk, amount_nusd=hold)
    settlement = settlement_make(
        buyer=buyer,
        seller=seller,
        listing=listing,
        request_id=request_id,
        input_units=cost_units,
        output_units=0,
        lease_id=lease_id,
    )
    await billing_calls.settle(settlement)
    return lease_id


async def _closed(coro):
    try:
        return await coro
    finally:
        await runtime.current().close()


def test_back_to_back_requests_share_one_lease_and_it_is_voided_at_the_end(wallet):
    buyer = wallet[0]

    async def main():
        ids = [await _request(wallet, f"req_seq{n:04d}") for n in range(6)]
        return ids, await sync_to_async(_in_thread(_wallet_and_holds), thread_sensitive=False)(
            buyer
        )

    ids, (during, holds) = asyncio.run(_closed(main()))

    cost = 270_000  # 1000 input tokens at $0.27 / M
    assert ids[0] is None and len(set(ids[1:])) == 1  # the first held alone, the rest leased
    lease_id = ids[1]
    assert lease_id is not None and lease_id.startswith("req_") and "lease" in lease_id
    assert during == (usd_to_nusd("1") - 6 * cost, 8 * W - 5 * cost)  # the lease less 5 debits
    assert holds == {"req_seq0000": ("settled", W), lease_id: ("active", 8 * W - 5 * cost)}
    # The runtime's close (a clean stop) voided what the lease still held.
    lease = Hold.objects.get(request_id=lease_id)
    assert (lease.status, lease.void_reason) == ("voided", "balance lease ended")
    assert _wallet_and_holds(buyer)[0] == (usd_to_nusd("1") - 6 * cost, 0)
    assert UsageRecord.objects.filter(buyer=buyer).count() == 6
    assert ledger_violations() == []


def _in_thread(read):
    """`read` on a worker thread, closing the connection it opened there."""

    def run(*args):
        try:
            return read(*args)
        finally:
            connection.close()

    return run


def _wallet_and_holds(buyer):
    summary = selectors.wallet_summary(user=buyer)
    holds = {h.request_id: (h.status, h.amount_nusd) for h in Hold.objects.filter(user=buyer)}
    return (summary["balance_nusd"], summary["held_nusd"]), holds


def test_concurrent_requests_wait_for_one_placement_and_draw_from_it(wallet):
    buyer = wallet[0]

    async def main():
        await _request(wallet, "req_first0000")  # makes the buyer busy
        return await asyncio.gather(*(_request(wallet, f"req_c{n:04d}") for n in range(8)))

    ids = asyncio.run(_closed(main()))
    assert len(set(ids)) == 1 and ids[0] is not None  # one lease, placed once, 8 draws
    assert Hold.objects.filter(user=buyer).count() == 2  # the first request's and the lease
    assert UsageRecord.objects.filter(buyer=buyer).count() == 9
    assert selectors.wallet_summary(user=buyer)["held_nusd"] == 0
    assert ledger_violations() == []


def test_a_wallet_without_the_headroom_gets_no_lease_and_its_requests_hold_alone(wallet, settings):
    settings.DRAGONFLY_BALANCE_LEASE_HEADROOM = 1000  # a lease of 8 W would need $8
    buyer = wallet[0]

    async def main():
        return [await _request(wallet, f"req_poor{n:04d}") for n in range(4)]

    assert asyncio.run(_closed(main())) == [None] * 4
    assert Hold.objects.filter(user=buyer).count() == 4
    assert not Hold.objects.filter(request_id__contains="lease").exists()


def test_a_request_released_before_it_is_served_gives_its_draw_back(wallet):
    buyer = wallet[0]

    async def main():
        await _request(wallet, "req_first0000")
        lease_id = await billing_calls.hold(
            request_id="req_full0000", user_id=buyer.pk, amount_nusd=W
        )
        await billing_calls.void(request_id="req_full0000", reason="every listing at capacity")
        leases = runtime.current().balance_leases
        return lease_id, leases.current[buyer.pk].drawn

    lease_id, drawn = asyncio.run(_closed(main()))
    assert lease_id is not None and drawn == 0
    assert not Hold.objects.filter(request_id="req_full0000").exists()  # no call was made


def test_a_draw_stays_in_flight_until_its_settlement_lands_then_goes_back(wallet):
    """trade.settle hands the settlement to a task of its own and the request ends: the draw is
    the settlement's until it lands, and it lands whatever became of the request."""
    buyer, seller, listing = wallet

    async def main():
        await _request(wallet, "req_first0000")
        lease_id = await billing_calls.hold(
            request_id="req_gone0000", user_id=buyer.pk, amount_nusd=W
        )
        settlement = settlement_make(
            buyer=buyer,
            seller=seller,
            listing=listing,
            request_id="req_gone0000",
            output_units=0,
            lease_id=lease_id,
        )
        landing = background.spawn(billing_calls.settle(settlement))
        lease = runtime.current().balance_leases.current[buyer.pk]
        before = lease.in_flight
        await landing
        return lease_id, before, lease.drawn, lease.in_flight

    lease_id, before, drawn, in_flight = asyncio.run(_closed(main()))
    assert lease_id is not None and before == 1 and (drawn, in_flight) == (0, 0)
    assert UsageRecord.objects.get(request_id="req_gone0000").buyer_debit_nusd == 270_000
    assert selectors.wallet_summary(user=buyer)["held_nusd"] == 0  # the lease ended at close
    assert ledger_violations() == []


# Two event loops, each with its own runtime and so its own leases (as two gateway processes
# have), race one wallet down to nothing: every request served was covered by a hold or a draw,
# so nothing is overrun, and every request is settled once.
LOOPS = 2
PER_LOOP = 40
CONCURRENT = 8
WORST = usd_to_nusd("0.06")  # each request's hold; each costs 200,000 tokens at $0.27 / M


def test_two_loops_racing_one_wallet_to_empty_never_serve_an_uncovered_request(wallet, settings):
    settings.DRAGONFLY_BALANCE_LEASE_REQUESTS = 4  # $0.24 a lease,
    settings.DRAGONFLY_BALANCE_LEASE_HEADROOM = 2  # placed while $0.48 is available
    buyer = wallet[0]
    fund(buyer, "2")
    served: list[str] = []
    refused: list[str] = []
    failures: list[BaseException] = []
    start = threading.Barrier(LOOPS)

    async def one(request_id: str, gate: asyncio.Semaphore) -> None:
        async with gate:
            try:
                await _request(wallet, request_id, hold=WORST, cost_units=200_000)
            except GatewayError as exc:
                assert exc.status == 403
                refused.append(request_id)
                return
            served.append(request_id)

    async def loop_main(n: int) -> None:
        gate = asyncio.Semaphore(CONCURRENT)
        for batch in range(PER_LOOP // CONCURRENT):
            await asyncio.gather(*(one(f"req_l{n}b{batch}i{i}", gate) for i in range(CONCURRENT)))

    def run(n: int) -> None:
        start.wait()
        try:
            asyncio.run(_closed(loop_main(n)))
        except BaseException as exc:
            failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(n,)) for n in range(LOOPS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)

    assert failures == []
    assert len(served) + len(refused) == LOOPS * PER_LOOP
    # $3 serves at most 55 ($0.054 each, admitted while $0.06 is free); a few fewer when a
    # request is refused while others in flight (or a lease) still reserve what settles later.
    assert 45 <= len(served) <= 55
    records = UsageRecord.objects.filter(buyer=buyer)
    assert sorted(records.values_list("request_id", flat=True)) == sorted(served)
    assert not records.exclude(overrun_nusd=0).exists()  # every one covered by what it held
    wallet_row = LedgerAccount.objects.get(user=buyer, kind=AccountKind.WALLET)
    assert wallet_row.balance_nusd == usd_to_nusd("3") - sum(
        records.values_list("buyer_debit_nusd", flat=True)
    )
    assert wallet_row.held_nusd == 0  # every lease voided at its loop's close
    assert Hold.objects.filter(user=buyer, request_id__contains="lease").exists()
    assert ledger_violations() == []
