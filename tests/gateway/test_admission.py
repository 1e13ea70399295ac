"""Admission turns: at most DRAGONFLY_GATEWAY_ADMISSION requests between their body and their
upstream call, given in arrival order, and given back however a request ends, before its upstream
call at the latest."""

import asyncio
import time

import pytest
from asgiref.sync import sync_to_async
from django.test import override_settings

from gateway import admission, runtime
from gateway.admission import Turn
from tests.gateway.factories import buyer_make
from tests.market.factories import listing_make, seller_make

BODY = {
    "model": "deepseek/deepseek-chat",
    "messages": [{"role": "user", "content": "Hello!"}],
    "max_tokens": 16,
}


@override_settings(DRAGONFLY_GATEWAY_ADMISSION=2)
async def test_turns_go_in_arrival_order_and_never_more_than_the_limit_at_once():
    inside: list[int] = []
    entered: list[int] = []
    most = 0

    async def request(n: int) -> None:
        nonlocal most
        async with Turn():
            entered.append(n)
            inside.append(n)
            most = max(most, len(inside))
            for _ in range(3):  # a few awaits, as the steps before an upstream call make
                await asyncio.sleep(0)
            inside.remove(n)

    await asyncio.gather(*(request(n) for n in range(10)))
    assert entered == list(range(10))
    assert most == 2


async def _free_within(seconds: float) -> bool:
    """True if a turn could be had within `seconds` (it is given straight back); a caller that
    gives up waiting leaves the queue."""
    try:
        async with asyncio.timeout(seconds):
            async with Turn():
                return True
    except TimeoutError:
        return False


@override_settings(DRAGONFLY_GATEWAY_ADMISSION=1)
async def test_a_turn_is_given_back_once_whether_ended_early_by_an_error_or_by_a_caller_leaving():
    async with Turn() as turn:
        turn.end()
        turn.end()  # ending twice gives back one turn, not two
        async with Turn():  # the first's turn, free again
            assert not await _free_within(0.05)  # the only turn is taken; this caller leaves
    assert await _free_within(1)
    with pytest.raises(RuntimeError):
        async with Turn():
            raise RuntimeError("refused")
    assert await _free_within(1)


def _auth(buyer):
    return {"Authorization": f"Bearer {buyer.key}"}


@pytest.mark.django_db(transaction=True)
@override_settings(DRAGONFLY_GATEWAY_ADMISSION=1)
async def test_one_turn_serves_requests_while_another_waits_on_its_upstream(market, client):
    """With a single turn, a request waiting 300 ms on its upstream does not hold up the next."""
    buyer = await sync_to_async(buyer_make)()
    slow_model = "deepseek/deepseek-reasoner"
    await sync_to_async(
        lambda: listing_make(seller_make(), key="sim-slow?delay_ms=300", models=(slow_model,))
    )()
    await sync_to_async(lambda: listing_make(seller_make()))()
    slow = asyncio.create_task(
        client.post(
            "/v1/chat/completions", headers=_auth(buyer), json={**BODY, "model": slow_model}
        )
    )
    await asyncio.sleep(0.1)  # the slow one is past its hold, waiting on its upstream
    started = time.monotonic()
    refused = await client.post(
        "/v1/chat/completions", headers=_auth(buyer), json={**BODY, "model": "minimax/speech-02-hd"}
    )
    assert refused.status_code == 400
    response = await client.post(
        "/v1/chat/completions", headers=_auth(buyer), json={**BODY, "stream": True}
    )
    assert response.status_code == 200, response.text
    assert time.monotonic() - started < 0.25  # neither waited for the slow upstream
    assert not slow.done()
    assert (await slow).status_code == 200


@override_settings(DRAGONFLY_GATEWAY_SETTLEMENT_BACKLOG=2)
async def test_past_the_settlement_backlog_requests_wait_in_order_until_settlements_land():
    admission.settling()
    admission.settling()  # two settlements waiting for their batch: the backlog is full
    entered: list[int] = []

    async def request(n: int) -> None:
        async with Turn():
            entered.append(n)

    waiting = [asyncio.ensure_future(request(n)) for n in range(3)]
    for _ in range(5):
        await asyncio.sleep(0)
    assert entered == []
    admission.landed()  # one landed: room for one
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert entered == [0]
    admission.landed()
    await asyncio.gather(*waiting)  # below the bound now: every one goes, in arrival order
    assert entered == [0, 1, 2]
    assert runtime.current().settlements_waiting == 0


@override_settings(DRAGONFLY_GATEWAY_SETTLEMENT_BACKLOG=1)
async def test_a_request_that_leaves_while_waiting_for_room_does_not_keep_it_from_the_next():
    admission.settling()
    first = asyncio.ensure_future(_free_within(10))
    second = asyncio.ensure_future(_free_within(10))
    await asyncio.sleep(0)
    first.cancel()  # the buyer left while waiting
    admission.landed()
    assert await second  # the room went to the next request, not to the one that left
    with pytest.raises(asyncio.CancelledError):
        await first
