"""The pipeline (gateway/trade.py) driven directly, without the ASGI app: however a request ends,
its capacity slot is given back, its hold is settled or voided exactly once, its spend
reservation is released, the tokens/min count keeps only what it used, and the session is pinned
only when a listing served. Real PostgreSQL, Redis and the simulator as the upstream.
"""

from __future__ import annotations

import asyncio
import threading

import orjson
import pytest
from asgiref.sync import sync_to_async
from django.db import connections

from billing.models import Hold, UsageRecord
from billing.selectors import wallet_summary
from gateway import (
    asgi,
    background,
    capacity,
    health_reports,
    limits,
    metering,
    price_lock,
    process,
    runtime,
    spend,
    stages,
    trade,
)
from gateway.call import Call
from gateway.errors import GatewayError
from gateway.response import Response
from redis_clients.clients import get_redis
from tests.gateway.factories import buyer_make
from tests.gateway.test_db_faults import _allow_connections, _terminate_others
from tests.market.factories import listing_make, seller_make

pytestmark = pytest.mark.django_db(transaction=True)
MODEL = "deepseek/deepseek-chat"
SESSION = "pipeline-session"


class Connection:
    """The buyer's side of one request: the body to read, what was sent back, and a hang-up."""

    def __init__(self, body: dict) -> None:
        self.body = orjson.dumps(body)
        self.sent: list[dict] = []
        self.first_byte = asyncio.Event()
        self.answered = asyncio.Event()
        self._gone = asyncio.Event()
        self._read = False

    async def receive(self) -> dict:
        if not self._read:
            self._read = True
            return {"type": "http.request", "body": self.body, "more_body": False}
        await self._gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict) -> None:
        self.sent.append(message)
        if message["type"] == "http.response.body":
            self.first_byte.set()
            if not message.get("more_body"):
                self.answered.set()

    def hang_up(self) -> None:
        self._gone.set()

    @property
    def status(self) -> int:
        return next(m["status"] for m in self.sent if m["type"] == "http.response.start")


def _scope(buyer) -> dict:
    return {
        "type": "http",
        "method": "POST",
        "path": "/v1/chat/completions",
        "headers": [
            (b"authorization", f"Bearer {buyer.key}".encode()),
            (b"content-type", b"application/json"),
            (b"x-session-id", SESSION.encode()),
        ],
        "client": ("127.0.0.1", 40000),
    }


def _body(*, stream: bool = False, max_tokens: int = 50) -> dict:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}]}
    return {**body, "stream": stream, "max_tokens": max_tokens}


def _start(buyer, connection: Connection) -> tuple[Response, asyncio.Task]:
    """Run the pipeline for one chat request in a task of its own (as the server does)."""
    out = Response(connection.send, process.request_id())
    task = asyncio.create_task(
        trade.run(_scope(buyer), connection.receive, out, asgi.CHAT_COMPLETIONS)
    )
    return out, task


async def _run(buyer, connection: Connection) -> tuple[Response, BaseException | None]:
    """The request, then its settlement landed (it lands after the request: trade.settle)."""
    out, task = _start(buyer, connection)
    try:
        await task
    except BaseException as exc:  # a GatewayError, or CancelledError when the task was cancelled
        return out, exc
    finally:
        await background.drain()
    return out, None


async def _buyer(**fields):
    """A buyer whose key has a tokens/min limit, so its tokens are counted in Redis."""
    return await sync_to_async(buyer_make)(key_tpm=10_000_000, **fields)


async def _listing(**fields):
    return await sync_to_async(lambda: listing_make(seller_make(), **fields))()


async def _settled_down() -> None:
    """Let off-path work land: slot releases, health reports, background voids and settlements."""
    from market.health_passive import background_drain

    await background.drain()
    await capacity.flush()
    await health_reports.flush()
    await background_drain()


def _tokens_counted(key_id: int) -> int:
    """The key's tokens/min counters, over every window this test touched."""
    r = get_redis()
    return sum(int(r.get(name) or 0) for name in r.scan_iter(match=f"rl:k:{key_id}:t:*"))


async def _assert_left_clean(buyer, out: Response, *, hold: str | None, tokens: int, pinned=None):
    """Slots given back, the hold in `hold` state (None: never placed) and no other, the spend
    reservation released, `tokens` counted against tokens/min, the session pinned to `pinned`."""
    await _settled_down()
    r = get_redis()
    assert [key for key in r.scan_iter(match="cap:inflight:*") if r.zcard(key)] == []
    holds = await sync_to_async(
        lambda: list(
            Hold.objects.filter(request_id=out.request_id).values_list("status", flat=True)
        )
    )()
    assert holds == ([] if hold is None else [hold])
    records = await sync_to_async(UsageRecord.objects.filter(request_id=out.request_id).count)()
    assert records == (1 if hold == "settled" else 0)
    assert runtime.caches.spend_in_flight.get(buyer.key_id) is None
    assert runtime.current().settlements_waiting == 0  # the backlog counted it out (admission.py)
    assert _tokens_counted(buyer.key_id) == tokens
    pin = price_lock.parse(r.get(f"sticky:{buyer.user.pk}:{SESSION}"))
    assert (pin and pin.listing_id) == (None if pinned is None else pinned.pk)
    assert (await sync_to_async(wallet_summary)(user=buyer.user))["held_nusd"] == 0


async def _used(out: Response) -> int:
    record = await sync_to_async(UsageRecord.objects.get)(request_id=out.request_id)
    return record.input_units + record.output_units


@pytest.mark.parametrize("stream", [False, True])
async def test_a_served_request_settles_once_and_pins_the_listing(market, stream):
    buyer = await _buyer()
    listing = await _listing(key="sim-pipe-good")
    connection = Connection(_body(stream=stream))
    out, failure = await _run(buyer, connection)
    assert failure is None and connection.status == 200
    await _assert_left_clean(buyer, out, hold="settled", tokens=await _used(out), pinned=listing)


async def test_an_upstream_failure_then_a_good_listing_bills_only_the_good_one(market):
    buyer = await _buyer()
    broken = await _listing(key="sim-pipe-broken?status=500", percent=50)
    good = await _listing(key="sim-pipe-good", percent=90)
    connection = Connection(_body(stream=True))
    out, failure = await _run(buyer, connection)
    assert failure is None and connection.status == 200
    record = await sync_to_async(UsageRecord.objects.get)(request_id=out.request_id)
    assert record.listing_id == good.pk != broken.pk
    await _assert_left_clean(buyer, out, hold="settled", tokens=await _used(out), pinned=good)


async def test_when_every_listing_fails_the_hold_is_voided_and_nothing_counts(market):
    buyer = await _buyer()
    await _listing(key="sim-pipe-broken-a?status=500")
    await _listing(key="sim-pipe-broken-b?status=503")
    out, failure = await _run(buyer, Connection(_body()))
    assert isinstance(failure, GatewayError) and failure.status == 502
    await _assert_left_clean(buyer, out, hold="voided", tokens=0)


async def test_a_buyer_gone_before_the_first_token_pays_the_prompt_and_pins_nothing(market):
    buyer = await _buyer()
    # the simulator sends its head with its first bytes: a keep-alive comment, 500 ms in
    await _listing(key="sim-pipe-slow?ttft_ms=3000&keepalive=5")
    connection = Connection(_body(stream=True))
    out, task = _start(buyer, connection)
    await _until(lambda: _held(out.request_id))
    await asyncio.sleep(1.0)  # the upstream has the request; its first token is seconds away
    connection.hang_up()
    (failure,) = await asyncio.gather(task, return_exceptions=True)
    assert isinstance(failure, asyncio.CancelledError) and out.disconnected
    assert not connection.first_byte.is_set()
    # billed the prompt (billing policy 4), yet no listing served: tokens/min counts nothing
    await _assert_left_clean(buyer, out, hold="settled", tokens=0)
    record = await sync_to_async(UsageRecord.objects.get)(request_id=out.request_id)
    assert (record.outcome, record.output_units) == ("client_disconnected", 0)


async def test_a_buyer_gone_mid_stream_pays_what_was_delivered(market):
    buyer = await _buyer()
    listing = await _listing(key="sim-pipe-long?tps=20&tokens=400")
    connection = Connection(_body(stream=True, max_tokens=1000))
    out, task = _start(buyer, connection)
    await asyncio.wait_for(connection.first_byte.wait(), 10)
    connection.hang_up()
    (failure,) = await asyncio.gather(task, return_exceptions=True)
    assert isinstance(failure, asyncio.CancelledError) and not connection.answered.is_set()
    await background.drain()  # its settlement lands after the request
    record = await sync_to_async(UsageRecord.objects.get)(request_id=out.request_id)
    assert record.outcome == "client_disconnected" and 0 < record.output_units < 400
    await _assert_left_clean(buyer, out, hold="settled", tokens=await _used(out), pinned=listing)


async def test_a_hold_refused_for_want_of_funds_leaves_nothing_behind(market):
    buyer = await _buyer(credit_usd="0.000001")
    await _listing(key="sim-pipe-good")
    out, failure = await _run(buyer, Connection(_body(max_tokens=10_000)))
    assert isinstance(failure, GatewayError) and failure.status == 403
    await _assert_left_clean(buyer, out, hold=None, tokens=0)
    assert market.app.stats()["keys"] == {}  # no upstream call


async def test_a_database_unreachable_at_the_hold_is_a_503_that_leaves_nothing_behind(market, heal):
    buyer = await _buyer()
    await _listing(key="sim-pipe-good")
    warm, _ = await _run(buyer, Connection(_body()))  # caches the key, table and seller key
    used = await _used(warm)
    get_redis().delete(f"sticky:{buyer.user.pk}:{SESSION}")
    await sync_to_async(_allow_connections)(False)
    try:
        await sync_to_async(_terminate_others)()
        out, failure = await _run(buyer, Connection(_body()))
    finally:
        await sync_to_async(_allow_connections)(True)
        await sync_to_async(connections.close_all)()
    assert isinstance(failure, GatewayError) and failure.status == 503
    await _assert_left_clean(buyer, out, hold=None, tokens=used, pinned=None)


@pytest.fixture
def heal(transactional_db):
    yield
    connections.close_all()


class WalletLock:
    """Holds the buyer's wallet row locked from another connection, so money calls wait."""

    def __init__(self, user_id: int) -> None:
        self.user_id = user_id
        self.locked = threading.Event()
        self._release = threading.Event()
        self._thread = threading.Thread(target=self._hold)

    def _hold(self) -> None:
        from django.db import connection, transaction

        try:
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute(
                        "SELECT id FROM billing_ledgeraccount"
                        " WHERE user_id = %s AND kind = 'wallet' FOR UPDATE",
                        [self.user_id],
                    )
                self.locked.set()
                self._release.wait(10)
        finally:
            connection.close()

    async def __aenter__(self) -> WalletLock:
        self._thread.start()
        await asyncio.to_thread(self.locked.wait, 10)
        return self

    async def __aexit__(self, *exc) -> None:
        self._release.set()
        await asyncio.to_thread(self._thread.join, 10)


async def _until(check, within: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await check():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def _held(request_id: str) -> bool:
    return await sync_to_async(Hold.objects.filter(request_id=request_id).exists)()


async def _waiting_on_a_lock() -> bool:
    def waiting() -> bool:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            return cursor.fetchone()[0] > 0

    return await sync_to_async(waiting)()


async def _call(buyer, body: dict) -> Call:
    """A Call routed, sized, rate-limited and ranked by the pipeline's own steps."""
    from gateway import auth
    from gateway.headers import request_map

    scope = _scope(buyer)
    headers = request_map(scope)
    key = await auth.authenticate(headers, scope)
    endpoint = asgi.CHAT_COMPLETIONS
    chat = endpoint.parse(body)
    route = await trade.route(headers, key, chat.model, modality=endpoint.modality)
    call = Call(
        Response(Connection(body).send, process.request_id()),
        key,
        endpoint,
        chat,
        route,
        endpoint.size(chat, route.model),
    )
    call.verdict = await trade.rate_limit(call.out, key, call.meter.units_estimate)
    await trade.rank(call)
    return call


async def test_a_request_cancelled_while_its_hold_waits_voids_it_once_placed(market):
    buyer = await _buyer()
    await _listing(key="sim-pipe-good")
    call = await _call(buyer, _body())
    async with WalletLock(buyer.user.pk):
        step = asyncio.create_task(trade.slot_and_hold(call))
        await _until(_waiting_on_a_lock)
        step.cancel()
        (failure,) = await asyncio.gather(step, return_exceptions=True)
        assert isinstance(failure, asyncio.CancelledError)
    await _until(lambda: _hold_is(call.out.request_id, "voided"))
    await limits.correct(call.verdict, call.meter.units_used)
    await _assert_left_clean(buyer, call.out, hold="voided", tokens=0)


async def _hold_is(request_id: str, status: str) -> bool:
    await background.drain()
    return await sync_to_async(_hold_statuses)(request_id) == [status]


async def test_a_request_ends_before_its_settlement_lands_and_is_billed_once(market):
    """The answer is out and the request done while its settlement still waits (here on the
    buyer's wallet lock): it lands afterwards, on its own, and the request's resources are
    already given back but for the spend reservation, which waits for it."""
    buyer = await _buyer()
    listing = await _listing(key="sim-pipe-slow?ttft_ms=500")
    connection = Connection(_body())
    out, task = _start(buyer, connection)
    await _until(lambda: _held(out.request_id))
    async with WalletLock(buyer.user.pk):  # taken while the upstream answers: settle waits on it
        await asyncio.wait_for(connection.answered.wait(), 10)
        await _until(_waiting_on_a_lock)
        await asyncio.wait_for(task, 10)  # the request is done: its settlement is not
        assert await sync_to_async(_hold_statuses)(out.request_id) == ["active"]
        assert runtime.caches.spend_in_flight.get(buyer.key_id)  # still counted in flight
        assert runtime.current().settlements_waiting == 1  # in the process's backlog
    await _until(lambda: _hold_is(out.request_id, "settled"))
    await _assert_left_clean(buyer, out, hold="settled", tokens=await _used(out), pinned=listing)


def _hold_statuses(request_id: str) -> list[str]:
    return list(Hold.objects.filter(request_id=request_id).values_list("status", flat=True))


async def test_settling_twice_charges_once(market):
    buyer = await _buyer()
    await _listing(key="sim-pipe-good")
    connection = Connection(_body())
    out, failure = await _run(buyer, connection)
    assert failure is None
    call = await _call(buyer, _body())
    call.out = out  # the same request id, as if its settlement ran again
    assert call.ranked is not None
    await call.commit(call.ranked[0])
    with spend.reserve(call.key, call.hold_nusd) as call.reservation:
        landing = trade.settle(call, stages.UNSAMPLED)
    assert landing is not None and await landing == 0  # already settled: nothing more debited
    assert await sync_to_async(UsageRecord.objects.filter(request_id=out.request_id).count)() == 1


async def test_a_settlement_that_cannot_be_made_leaves_the_hold_to_the_reaper(market, monkeypatch):
    """A fault while the settlement is made (here: building it) is logged; the hold stays for the
    reaper, and nothing the request tracked is left behind (spend in flight, stream checkpoint)."""
    buyer = await _buyer()
    await _listing(key="sim-pipe-good")

    def broken(*args, **kwargs):
        raise RuntimeError("bug")

    monkeypatch.setattr(metering.Meter, "settlement", broken)
    connection = Connection(_body(stream=True))
    out, failure = await _run(buyer, connection)
    assert failure is None and connection.answered.is_set()
    assert await sync_to_async(_hold_statuses)(out.request_id) == ["active"]
    assert runtime.caches.spend_in_flight.get(buyer.key_id) is None
    assert runtime.current().settlements_waiting == 0
    assert out.request_id not in runtime.current().streams
