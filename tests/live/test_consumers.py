"""The live pages' sockets (live/consumers.py) through the project's ASGI app, its session
authentication and the Redis channel layer, against real PostgreSQL commits."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.test import Client

from billing import services
from billing.models import UsageRecord
from billing.money import format_usd
from dragonfly.asgi import application
from market.models import ListingStatus
from market.probes import ProbeResult, probe_target, result_apply
from tests.accounts.factories import user_make
from tests.billing.factories import fund, settlement_make
from tests.market.factories import listing_make, listing_row_make, seller_make

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]

QUIET = 1.0  # seconds a socket must stay silent to count as "receives nothing"


def _session_cookie(user) -> bytes:
    client = Client()
    client.force_login(user)
    return f"{django_settings.SESSION_COOKIE_NAME}={client.cookies[django_settings.SESSION_COOKIE_NAME].value}".encode()


async def _open(path: str, user=None) -> tuple[WebsocketCommunicator, bool]:
    headers = [(b"origin", b"http://127.0.0.1")]
    if user is not None:
        headers.append((b"cookie", await sync_to_async(_session_cookie)(user)))
    socket = WebsocketCommunicator(application, path, headers=headers)
    connected, _ = await socket.connect(timeout=5)
    return socket, connected


async def _next(socket: WebsocketCommunicator, kind: str, wait: float = 5.0) -> dict:
    """The next message of `kind` (others, such as wallet updates, are skipped)."""
    while True:
        message = await socket.receive_json_from(timeout=wait)
        if message["type"] == kind:
            return message


def _settle(*, buyer, listing, request_id: str) -> UsageRecord:
    services.hold_place(request_id=request_id, user_id=buyer.pk, amount_nusd=10_000_000)
    services.request_settle(
        settlement=settlement_make(
            buyer=buyer, seller=listing.seller, listing=listing, request_id=request_id
        )
    )
    return UsageRecord.objects.get(request_id=request_id)


@pytest.fixture
def fast(settings):
    settings.DRAGONFLY_LIVE_INTERVAL_SECONDS = 0.2


@pytest.fixture
def slow(settings):
    """Only a nudge can deliver a change within a test's patience."""
    settings.DRAGONFLY_LIVE_INTERVAL_SECONDS = 60


@pytest.mark.parametrize(
    "path", ["/ws/live/account/", "/ws/live/listings/1/", "/ws/live/topup/?session_id=cs_x"]
)
async def test_an_anonymous_socket_is_closed(path):
    socket, connected = await _open(path)
    assert connected is False
    await socket.disconnect()


async def test_a_settled_request_reaches_its_buyers_open_page_and_nobody_elses(fast):
    buyer, other = await sync_to_async(lambda: (user_make(), user_make()))()
    listing = await sync_to_async(lambda: listing_row_make(seller=user_make()))()
    await sync_to_async(fund)(buyer, "1")
    mine, connected = await _open("/ws/live/account/", buyer)
    assert connected
    theirs, connected = await _open("/ws/live/account/", other)
    assert connected
    first = await _next(mine, "wallet")
    assert first["fields"]["balance"] == "$1.00"
    assert (await _next(theirs, "wallet"))["fields"]["balance"] == "$0.00"

    record = await sync_to_async(_settle)(buyer=buyer, listing=listing, request_id="live-1")

    rows = (await _next(mine, "requests"))["rows"]
    assert [row["request_id"] for row in rows] == ["live-1"]
    assert rows[0]["cost"] == format_usd(record.buyer_debit_nusd)
    assert rows[0]["model"] == "deepseek/deepseek-chat"
    assert (rows[0]["input"], rows[0]["output"]) == (1000, 500)
    assert (rows[0]["ttft_ms"], rows[0]["latency_ms"], rows[0]["outcome"]) == (
        120,
        900,
        "completed",
    )
    wallet = (await _next(mine, "wallet"))["fields"]
    assert wallet["balance"] == format_usd(1_000_000_000 - record.buyer_debit_nusd)
    assert wallet["held"] == "$0.00"
    assert wallet["spent_month"] == format_usd(record.buyer_debit_nusd)
    assert await theirs.receive_nothing(timeout=QUIET)
    # Sent once: later reads find the row again (commit lag) and skip it.
    assert await mine.receive_nothing(timeout=QUIET)
    await mine.disconnect()
    await theirs.disconnect()


async def test_a_reconnecting_page_gets_the_rows_it_missed(fast):
    buyer = await sync_to_async(user_make)()
    listing = await sync_to_async(lambda: listing_row_make(seller=user_make()))()
    await sync_to_async(fund)(buyer, "1")
    record = await sync_to_async(_settle)(buyer=buyer, listing=listing, request_id="missed")
    after = (record.created_at.replace(microsecond=0) - timedelta(minutes=2)).isoformat()
    socket, connected = await _open(f"/ws/live/account/?after={after.replace('+', '%2B')}", buyer)
    assert connected
    rows = (await _next(socket, "requests"))["rows"]
    assert [row["request_id"] for row in rows] == ["missed"]
    await socket.disconnect()


async def test_a_sellers_listing_page_shows_its_last_minute_and_another_seller_is_refused(fast):
    seller, stranger, buyer = await sync_to_async(lambda: (user_make(), user_make(), user_make()))()
    listing = await sync_to_async(lambda: listing_row_make(seller=seller))()
    await sync_to_async(fund)(buyer, "1")
    refused, connected = await _open(f"/ws/live/listings/{listing.pk}/", stranger)
    assert connected is False
    await refused.disconnect()

    socket, connected = await _open(f"/ws/live/listings/{listing.pk}/", seller)
    assert connected
    quiet = (await _next(socket, "listing"))["fields"]
    assert (quiet["requests"], quiet["failed"], quiet["earned_minute"]) == ("0", "0", "$0.00")

    record = await sync_to_async(_settle)(buyer=buyer, listing=listing, request_id="sold")
    busy = (await _next(socket, "listing"))["fields"]
    assert busy["requests"] == "1"
    assert busy["ttft"] == "120 ms"
    assert busy["earned_minute"] == format_usd(record.seller_credit_nusd)
    assert busy["earnings_available"] == format_usd(record.seller_credit_nusd)
    await socket.disconnect()


async def test_a_pending_listing_turns_active_on_its_open_page_when_its_probe_decides(slow):
    def make():
        from tests.gateway import factories

        factories.market_make("http://127.0.0.1:9")  # the probe's answer is given below
        seller = seller_make()
        return listing_make(seller, status=ListingStatus.PENDING)

    listing = await sync_to_async(make)()
    socket, connected = await _open(f"/ws/live/listings/{listing.pk}/", listing.seller)
    assert connected
    assert (await _next(socket, "listing"))["status"] == "pending"

    def probe_decides() -> None:
        listing.refresh_from_db()
        target = probe_target(listing)
        result_apply(target, ProbeResult(listing.pk, True, 200, 150.0, ""))

    await sync_to_async(probe_decides)()
    decided = await _next(socket, "listing", wait=5)  # the nudge; the interval is a minute
    assert decided["status"] == "active"
    assert decided["fields"]["status"] == "active"
    await socket.disconnect()


async def test_the_top_up_page_shows_the_credit_when_the_webhook_lands(slow):
    buyer, other = await sync_to_async(lambda: (user_make(), user_make()))()

    def pending():
        topup = services.topup_create(user=buyer, amount_nusd=5_000_000_000)
        services.topup_session_attach(topup=topup, session_id="cs_test_live")
        return topup

    topup = await sync_to_async(pending)()
    socket, connected = await _open("/ws/live/topup/?session_id=cs_test_live", buyer)
    assert connected
    assert (await socket.receive_json_from(timeout=5))["status"] == "pending"
    assert await socket.receive_json_from(timeout=5) == {
        "type": "wallet",
        "fields": {
            "balance": "$0.00",
            "held": "$0.00",
            "available": "$0.00",
            "spent_month": "$0.00",
        },
    }
    # Another user naming the same session sees nothing of it.
    snoop, connected = await _open("/ws/live/topup/?session_id=cs_test_live", other)
    assert connected
    await _next(snoop, "wallet")

    # Longer than a socket's blocking receive in Redis (5 s), which once failed the socket.
    await asyncio.sleep(7)
    await sync_to_async(services.topup_fulfil)(
        session_id="cs_test_live",
        topup_id=str(topup.pk),
        amount_total_cents=500,
        currency="usd",
    )
    paid = await _next(socket, "topup", wait=5)  # the nudge; the interval is a minute
    assert paid == {"type": "topup", "status": "paid", "fields": {"amount": "$5.00"}}
    assert (await _next(socket, "wallet"))["fields"]["balance"] == "$5.00"
    assert await snoop.receive_nothing(timeout=QUIET)
    await socket.disconnect()
    await snoop.disconnect()


async def test_what_a_page_sends_is_ignored_and_its_socket_keeps_serving(fast):
    buyer = await sync_to_async(user_make)()
    listing = await sync_to_async(lambda: listing_row_make(seller=user_make()))()
    await sync_to_async(fund)(buyer, "1")
    socket, connected = await _open("/ws/live/account/", buyer)
    assert connected
    await _next(socket, "wallet")
    await socket.send_to(text_data="{not json")
    await socket.send_to(bytes_data=b"\x00\x01")
    await sync_to_async(_settle)(buyer=buyer, listing=listing, request_id="after-noise")
    rows = (await _next(socket, "requests"))["rows"]
    assert [row["request_id"] for row in rows] == ["after-noise"]
    await socket.disconnect()
