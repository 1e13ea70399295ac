"""Capacity shares (gateway/capacity_shares.py, capacity.py): a slot whose request ended stays in
this process's share of the listing, counted in Redis, and the next request takes it with no
round trip.

The books alone first, then through capacity.py on real Redis: what is kept and given back when,
the renewal of a kept slot's expiry, and two event loops (two processes' worth of shares) racing
one listing's cap, which is never passed."""

import asyncio
import random
import threading
from types import SimpleNamespace

from gateway import capacity, capacity_shares, runtime
from gateway.capacity_shares import Shares
from redis_clients.clients import get_redis


def _candidate(listing_id, cap=4, rpm=None):
    return SimpleNamespace(listing_id=listing_id, concurrency_cap=cap, requests_per_minute=rpm)


def _in_flight(listing_id) -> set[str]:
    return set(get_redis().zrange(f"cap:inflight:{listing_id}", 0, -1))


# ------------------------------------------------------------------------------ the books


def test_a_slot_kept_unused_for_a_whole_sweep_is_given_back_the_newest_first_reused():
    shares = Shares()
    shares.taken(1)
    shares.taken(1)
    assert shares.keep(1, "a", 100.0, cap=4) and shares.keep(1, "b", 100.0, cap=4)
    assert shares.sweep(now=0.0, lifetime=100.0) == ([], [])  # kept since the last: not unused
    assert shares.take(1) == ("b", 100.0)  # the newest
    assert shares.sweep(now=1.0, lifetime=100.0) == ([(1, "a")], [])  # "a" was not used
    assert shares.keep(1, "b", 100.0, cap=4)
    assert shares.sweep(now=2.0, lifetime=100.0) == ([], [])  # "b" was in use meanwhile
    assert shares.sweep(now=3.0, lifetime=100.0) == ([(1, "b")], [])
    assert shares.by_listing == {}  # nothing left: forgotten


def test_a_share_keeps_no_more_than_the_listings_cap():
    shares = Shares()
    for _ in range(3):
        shares.taken(7)
    assert shares.keep(7, "a", 100.0, cap=3)
    assert not shares.keep(7, "b", 100.0, cap=2)  # the cap was lowered to two meanwhile
    assert shares.keep(7, "c", 100.0, cap=3)
    assert [member for member, _ in shares.by_listing[7].free] == ["a", "c"]


def test_a_kept_slot_is_renewed_before_its_expiry_comes_near():
    shares = Shares()
    shares.taken(1)
    shares.keep(1, "a", 100.0, cap=4)
    # "a" expires at 100.0 with a lifetime of 100: its expiry was set at 0, so it is renewed
    # once RENEW_AFTER seconds have passed.
    renew_at = capacity_shares.RENEW_AFTER
    assert shares.sweep(now=renew_at - 1, lifetime=100.0) == ([], [])
    assert shares.take(1) == ("a", 100.0)
    shares.keep(1, "a", 100.0, cap=4)
    assert shares.sweep(now=renew_at + 1, lifetime=100.0) == ([], [(1, "a", renew_at + 101)])
    assert shares.take(1) == ("a", renew_at + 101)


def test_at_a_clean_stop_every_free_slot_is_given_back():
    shares = Shares()
    for listing in (1, 2):
        shares.taken(listing)
        shares.keep(listing, f"m{listing}", 100.0, cap=4)
    shares.taken(1)  # one still in use: given back by its request, as usual
    assert sorted(shares.take_all()) == [(1, "m1"), (2, "m2")]
    assert shares.take(1) is None


# ------------------------------------------------------------------------ through capacity.py


async def test_the_next_request_takes_the_kept_slot_with_no_round_trip(redis_scripts):
    calls = redis_scripts
    a = _candidate(941)
    slot = await capacity.take(a)
    assert len(calls) == 1 and _in_flight(941) == {slot.member}
    slot.release()  # kept: still counted in Redis, in this process's share
    again = await capacity.take(a)
    assert again.member == slot.member and len(calls) == 1
    again.release()

    capacity.sweep()  # kept since the last sweep: stays
    capacity.sweep()  # unused for a whole sweep: given back
    await capacity.flush()
    assert _in_flight(941) == set()


async def test_a_listing_with_a_requests_per_minute_cap_keeps_no_share():
    b = _candidate(942, rpm=100)
    slot = await capacity.take(b)
    slot.release()
    await capacity.flush()
    assert _in_flight(942) == set()
    assert runtime.current().capacity_shares.by_listing == {}


async def test_with_shares_off_a_slot_is_given_back_at_once(settings):
    settings.DRAGONFLY_CAPACITY_SHARES = False
    slot = await capacity.take(_candidate(943))
    slot.release()
    await capacity.flush()
    assert _in_flight(943) == set()


async def test_the_sweep_counts_again_a_kept_slot_that_redis_lost(monkeypatch):
    monkeypatch.setattr(capacity_shares, "RENEW_AFTER", 0.0)  # every kept slot renewed
    slot = await capacity.take(_candidate(944))
    slot.release()
    get_redis().delete("cap:inflight:944")  # as after a Redis restart
    capacity.sweep()
    await runtime.current().drain()
    assert _in_flight(944) == {slot.member}
    assert get_redis().ttl("cap:inflight:944") > 0
    await capacity.flush()
    assert _in_flight(944) == set()


def test_shares_keep_at_most_half_a_listings_cap_and_only_their_own_process_takes_them():
    """A process's kept slots look busy to its peers until its sweep gives them back; the half
    of the cap no share keeps goes request by request to any process."""
    a = _candidate(945, cap=4)

    async def first_process():
        slots = [await capacity.take(a) for _ in range(4)]
        for slot in slots:
            slot.release()
        await _given_back()  # the slots not kept
        return runtime.current(), [slot.member for slot in slots]

    async def second_process():
        try:
            slots = [await capacity.take_first([a]) for _ in range(3)]
            for slot, _ in slots:
                if slot is not None:
                    slot.release()
            return [(slot is not None, full) for slot, full in slots]
        finally:
            await runtime.current().close()

    loop = asyncio.new_event_loop()
    try:
        first, members = loop.run_until_complete(first_process())
        assert _in_flight(945) == set(members[:2])  # kept: taken with the listing half used
        assert asyncio.run(second_process()) == [(True, {}), (True, {}), (False, {945: "capacity"})]
        loop.run_until_complete(_sweep(first, times=2))
        assert _in_flight(945) == set()
        assert asyncio.run(second_process()) == [(True, {}), (True, {}), (True, {})]
    finally:
        loop.run_until_complete(first.close())
        loop.close()
    assert _in_flight(945) == set()


async def _sweep(state, times: int) -> None:
    for _ in range(times):
        capacity.sweep()
    await _given_back()


async def _given_back() -> None:
    """Let the slots released meanwhile go back on their own (within RELEASE_WITHIN)."""
    await asyncio.sleep(capacity.RELEASE_WITHIN * 4)
    await runtime.current().drain()


# Two event loops, each with its own runtime and so its own shares (as two gateway processes
# have), each with more requests than the listing's cap, sweeping as the lease loop does: the
# requests holding a slot at once never pass the cap. (Which loop is served is first come, first
# served: a process's given-back slots ride with its next take, so a loop that never pauses
# takes them again, with shares or without.)
LOOPS = 2
WORKERS = 6
CAP = 4
ROUNDS = 40


def test_two_loops_racing_one_listings_cap_never_pass_it():
    a = _candidate(946, cap=CAP)
    lock = threading.Lock()
    in_use = [0]
    most = [0]
    served = [0] * LOOPS
    failures: list[BaseException] = []
    start = threading.Barrier(LOOPS)

    async def worker(n: int) -> None:
        for _ in range(ROUNDS):
            slot = await capacity.take(a)
            if slot is None:
                await asyncio.sleep(0.001)
                continue
            with lock:
                in_use[0] += 1
                most[0] = max(most[0], in_use[0])
            await asyncio.sleep(random.uniform(0, 0.004))
            with lock:
                in_use[0] -= 1
            served[n] += 1
            slot.release()

    async def sweeping() -> None:
        while True:
            await asyncio.sleep(0.02)
            capacity.sweep()

    async def loop_main(n: int) -> None:
        sweeper = asyncio.ensure_future(sweeping())
        try:
            await asyncio.gather(*(worker(n) for _ in range(WORKERS)))
        finally:
            sweeper.cancel()
            await runtime.current().close()

    def run(n: int) -> None:
        start.wait()
        try:
            asyncio.run(loop_main(n))
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(LOOPS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert failures == []
    assert most[0] <= CAP
    assert sum(served) >= ROUNDS
    assert _in_flight(946) == set()  # every share given back at its loop's close
