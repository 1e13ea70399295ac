"""Capacity slots in Redis: the first take walks the ranked candidates in one script."""

from types import SimpleNamespace

from gateway import capacity


def _candidate(listing_id, cap=1, rpm=None):
    return SimpleNamespace(listing_id=listing_id, concurrency_cap=cap, requests_per_minute=rpm)


async def test_the_first_take_skips_full_listings_and_names_them():
    a, b, c = _candidate(901), _candidate(902, rpm=1), _candidate(903)
    first, full = await capacity.take_first([a, b, c])
    assert (first.listing_id, full) == (901, {})

    second, full = await capacity.take_first([a, b, c])  # a is busy with the first request
    assert (second.listing_id, full) == (902, {901: "capacity"})

    second.release()  # b is free again, but has used its one request this minute
    third, full = await capacity.take_first([a, b, c])  # each named with the cap it is at
    assert (third.listing_id, full) == (903, {901: "capacity", 902: "requests_per_minute"})

    none, full = await capacity.take_first([a, b, c])
    assert (none, full) == (None, {901: "capacity", 902: "requests_per_minute", 903: "capacity"})

    first.release()
    from gateway import background

    await background.drain()
    again = await capacity.take(a)
    assert again is not None and again.listing_id == 901
    for slot in (third, again):
        slot.release()
    await background.drain()


async def test_a_given_back_slot_rides_with_the_next_take_or_goes_on_its_own():
    import asyncio

    from gateway import background
    from redis_clients.clients import get_redis

    a = _candidate(
        911, rpm=100
    )  # counted per request: no share keeps its slot (test_capacity_shares)
    slot = await capacity.take(a)
    slot.release()  # not sent yet: the next take carries it, before it looks at a
    again, full = await capacity.take_first([a])
    assert (again.listing_id, full) == (911, {})
    assert get_redis().zcard("cap:inflight:911") == 1

    again.release()  # no take follows: it goes on its own within RELEASE_WITHIN
    await asyncio.sleep(capacity.RELEASE_WITHIN * 4)
    await background.drain()
    assert get_redis().zcard("cap:inflight:911") == 0


async def test_concurrent_takes_share_one_round_trip_and_respect_the_cap(monkeypatch):
    import asyncio

    from gateway import background, kv
    from redis_clients.clients import get_redis

    pipelines = []
    real_many = kv.Script.many

    async def counting_many(self, r, calls):
        pipelines.append(len(calls))
        return await real_many(self, r, calls)

    monkeypatch.setattr(kv.Script, "many", counting_many)
    a, b = _candidate(921, cap=3), _candidate(922, cap=2)
    results = await asyncio.gather(*(capacity.take_first([a, b]) for _ in range(8)))
    slots = [slot for slot, _ in results if slot is not None]
    assert sorted(slot.listing_id for slot in slots) == [921, 921, 921, 922, 922]
    assert [slot for slot, _ in results[5:]] == [None, None, None]
    assert pipelines == [8]  # all eight queued before the first went out
    assert (get_redis().zcard("cap:inflight:921"), get_redis().zcard("cap:inflight:922")) == (3, 2)
    for slot in slots:
        slot.release()
    await capacity.flush()
    await background.drain()
    assert get_redis().zcard("cap:inflight:921") == 0


async def test_a_slot_taken_for_a_cancelled_request_is_given_back():
    import asyncio

    from redis_clients.clients import get_redis

    a = _candidate(931, cap=5)
    first = asyncio.create_task(capacity.take_first([a]))
    leaving = asyncio.create_task(capacity.take_first([a]))
    await asyncio.sleep(0)  # both queued; the second's caller leaves before its answer
    leaving.cancel()
    slot, _ = await first
    await asyncio.sleep(capacity.RELEASE_WITHIN * 4)
    await capacity.flush()
    assert get_redis().zcard("cap:inflight:931") == 1  # only the slot someone holds
    slot.release()
    await capacity.flush()
    assert get_redis().zcard("cap:inflight:931") == 0
