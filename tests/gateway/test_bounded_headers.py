"""Numeric routing headers through the real pipeline: a huge exponent or an out-of-range value is
the seed's 400 naming the header, answered at once, with no hold and no upstream call; another
buyer's request sent at the same moment is not kept waiting (it was, 33 s, behind `1e999990`)."""

import asyncio
import time

import pytest
from asgiref.sync import sync_to_async

from billing.models import Hold
from tests.gateway.factories import buyer_make
from tests.market.factories import listing_make, seller_make

pytestmark = pytest.mark.django_db(transaction=True)
MODEL = "deepseek/deepseek-chat"
HELLO = [{"role": "user", "content": "Hello!"}]

REFUSED = [
    ("X-Max-Price", "1e999990", "Header X-Max-Price must be at most 100,000."),
    ("X-Max-Price", "1e999999", "Header X-Max-Price must be at most 100,000."),
    ("X-Max-Price", "-1e999990", "Header X-Max-Price cannot be negative."),
    ("X-Max-Price", "1e-999999", "Header X-Max-Price has at most 9 decimal places."),
    ("X-Max-Price", "9" * 5000, "Header X-Max-Price is too long (at most 40 characters)."),
    ("X-Max-Price", "100000.01", "Header X-Max-Price must be at most 100,000."),
    ("X-Max-Price", "NaN", "Header X-Max-Price must be a finite number."),
    ("X-Max-TTFT-Ms", "1e999990", "Header X-Max-TTFT-Ms must be at most 600,000."),
    ("X-Hard-Max-TTFT-Ms", "600001", "Header X-Hard-Max-TTFT-Ms must be at most 600,000."),
    ("X-Hard-Max-TTFT-Ms", "1e309", "Header X-Hard-Max-TTFT-Ms must be at most 600,000."),
    ("X-Min-Throughput-TPS", "Infinity", "Header X-Min-Throughput-TPS must be a finite number."),
    (
        "X-Hard-Min-Throughput-TPS",
        "1000001",
        "Header X-Hard-Min-Throughput-TPS must be at most 1,000,000.",
    ),
    (
        "X-Hard-Min-Throughput-TPS",
        "0x10",
        "Header X-Hard-Min-Throughput-TPS must be a number written in digits, like 12.5.",
    ),
]


@pytest.mark.parametrize(("header", "value", "message"), REFUSED)
async def test_a_numeric_header_out_of_bounds_is_a_quick_400_naming_it(
    market, client, header, value, message
):
    buyer = await sync_to_async(buyer_make)()
    await sync_to_async(lambda: listing_make(seller_make(), key="sim-bh-a", percent=50))()
    started = time.perf_counter()
    response = await client.post(
        "/v1/chat/completions",
        headers={"Authorization": f"Bearer {buyer.key}", header: value},
        json={"model": MODEL, "messages": HELLO},
    )
    elapsed = time.perf_counter() - started
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("bad_request", 400)
    assert error["message"].startswith(message + " It is a ")
    assert elapsed < 1.0  # the parse itself takes microseconds; the rest is auth and the body
    assert market.app.stats()["keys"] == {}
    assert await sync_to_async(Hold.objects.filter(user=buyer.user).count)() == 0


async def test_a_huge_exponent_does_not_hold_up_another_buyer(market, client):
    attacker = await sync_to_async(buyer_make)()
    buyer = await sync_to_async(buyer_make)()
    listing = await sync_to_async(lambda: listing_make(seller_make(), key="sim-bh-b", percent=50))()
    started = time.perf_counter()
    refused, served = await asyncio.gather(
        client.post(
            "/v1/chat/completions",
            headers={"Authorization": f"Bearer {attacker.key}", "X-Max-Price": "1e999990"},
            json={"model": MODEL, "messages": HELLO},
        ),
        client.post(
            "/v1/chat/completions",
            headers={  # in range, in every accepted spelling
                "Authorization": f"Bearer {buyer.key}",
                "X-Max-Price": "5e-1",
                "X-Max-TTFT-Ms": " 1e3 ",
                "X-Min-Throughput-TPS": "0.5",
            },
            json={"model": MODEL, "messages": HELLO},
        ),
    )
    assert (refused.status_code, served.status_code) == (400, 200), served.text
    assert served.headers["x-df-market-listing-id"] == str(listing.pk)
    assert time.perf_counter() - started < 5.0  # a completion from the simulator, not 34 s
