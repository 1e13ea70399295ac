"""Money through the real server: holds under concurrency, settlement on disconnect, rate limits."""

import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import httpx
import pytest
from django.core.management import call_command

from billing.models import Hold, UsageRecord
from billing.money import NUSD_PER_USD
from billing.selectors import earnings_by_listing
from gateway import metering

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
MODEL = "deepseek/deepseek-chat"
HELLO = [{"role": "user", "content": "Hello!"}]
# Each request below holds its worst case: the prompt bound (its body's bytes and the template's
# tokens) at $0.40/M and 100 output tokens at $1.20/M.
RUSH_BODY = {"model": MODEL, "messages": HELLO, "max_tokens": 100}
HOLD_NUSD = metering.worst_case_nusd(
    prompt_tokens=metering.prompt_token_bound(RUSH_BODY, ()),
    output_tokens=100,
    ask_input_nusd=400_000_000,
    ask_output_nusd=1_200_000_000,
)


def test_100_concurrent_requests_serve_exactly_the_10_the_buyer_can_afford(world):
    buyer = world.buyer(credit_usd=str(Decimal(10 * HOLD_NUSD) / NUSD_PER_USD))  # 10 holds
    world.listing(key="sim-e2e-rush?ttft_ms=3000&tokens=5", concurrency_cap=100)
    world.routable(MODEL, 1)

    shared = httpx.Client(timeout=30, limits=httpx.Limits(max_connections=100))

    def call(_):
        return shared.post(
            world.base + "/chat/completions",
            json=RUSH_BODY,
            headers={"Authorization": f"Bearer {buyer.key}"},
        )

    with shared, ThreadPoolExecutor(100) as pool:
        responses = list(pool.map(call, range(100)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 10 + [403] * 90, [
        (r.status_code, r.text[:150]) for r in responses if r.status_code != 403
    ]
    assert all(
        r.json()["error"]["message"] == "Insufficient balance"
        for r in responses
        if r.status_code == 403
    )
    served = [r.headers["x-df-market-request-id"] for r in responses if r.status_code == 200]
    records = [world.usage(request_id) for request_id in served]
    assert all(record is not None for record in records)
    summary = world.wallet(buyer)
    assert summary["held_nusd"] == 0
    assert summary["balance_nusd"] == 10 * HOLD_NUSD - sum(r.buyer_debit_nusd for r in records)
    assert summary["balance_nusd"] >= 0
    call_command("ledger_check")


def _stream_and_hang_up(world, buyer, chunks_to_read: int) -> str:
    with (
        httpx.Client(timeout=30) as client,
        client.stream(
            "POST",
            world.base + "/chat/completions",
            json={"model": MODEL, "messages": HELLO, "stream": True},
            headers={"Authorization": f"Bearer {buyer.key}"},
        ) as response,
    ):
        assert response.status_code == 200
        request_id = response.headers["x-df-market-request-id"]
        events = 0
        if chunks_to_read:
            for line in response.iter_lines():
                if line.startswith("data: "):
                    events += 1
                    if events == chunks_to_read:
                        break
    return request_id


@pytest.mark.parametrize("read", [0, 1, 11])  # after the head, the first event, half the stream
def test_a_client_hanging_up_mid_stream_is_settled_once_for_what_was_delivered(world, read):
    buyer = world.buyer()
    world.listing(key="sim-e2e-hangup?tps=20&tokens=20")
    world.routable(MODEL, 1)
    request_id = _stream_and_hang_up(world, buyer, read)
    time.sleep(0.5)
    record = world.usage(request_id)
    assert record.outcome == "client_disconnected"
    # The first event is the role chunk (no content); each later one carries one token.
    assert max(0, read - 1) <= record.output_units <= read + 1
    # The upstream had the request: the prompt is billed even with no content delivered.
    assert record.input_units == 2
    assert record.buyer_debit_nusd == record.cost_nusd > 0
    assert UsageRecord.objects.filter(request_id=request_id).count() == 1
    assert world.wallet(buyer)["held_nusd"] == 0
    call_command("ledger_check")


def _hang_up_before_the_first_token(world, buyer) -> None:
    with httpx.Client(timeout=0.5) as client, pytest.raises(httpx.ReadTimeout):
        client.post(
            world.base + "/chat/completions",
            json={"model": MODEL, "messages": HELLO, "stream": True},
            headers={"Authorization": f"Bearer {buyer.key}"},
        )
    time.sleep(2.0)


def test_a_client_hanging_up_after_the_upstream_accepted_pays_the_prompt_only(world):
    """The upstream's response head arrived (its provider bills the seller for the prompt), the
    first token had not: billing policy rule 4. (The simulator sends its head with the first
    bytes, here the first keep-alive comment, 250 ms in.)"""
    buyer = world.buyer()
    listing = world.listing(key="sim-e2e-early?ttft_ms=1500&keepalive=5")
    world.routable(MODEL, 1)
    _hang_up_before_the_first_token(world, buyer)
    hold = Hold.objects.get(user=buyer.user)
    assert hold.status == "settled"
    record = UsageRecord.objects.get(buyer=buyer.user)
    assert (record.outcome, record.input_units, record.output_units) == (
        "client_disconnected",
        2,  # "Hello!" estimated at 2 tokens: the upstream never reported usage
        0,
    )
    assert record.cost_nusd == record.buyer_debit_nusd == 800  # 2 x $0.40/M
    assert record.seller_credit_nusd + record.fee_nusd == 800
    summary = world.wallet(buyer)
    assert (summary["held_nusd"], summary["balance_nusd"]) == (0, 10_000_000_000 - 800)
    (row,) = earnings_by_listing(seller=listing.seller)  # the seller's statement says why
    assert (row["requests"], row["prompt_only"], row["earned_nusd"]) == (
        1,
        1,
        record.seller_credit_nusd,
    )
    call_command("ledger_check")


def test_a_client_hanging_up_before_the_upstream_answered_pays_nothing(world):
    buyer = world.buyer()
    world.listing(key="sim-e2e-late-head?delay_ms=1500")
    world.routable(MODEL, 1)
    _hang_up_before_the_first_token(world, buyer)
    hold = Hold.objects.get(user=buyer.user)
    assert hold.status == "voided"
    assert UsageRecord.objects.filter(buyer=buyer.user).count() == 0
    summary = world.wallet(buyer)
    assert (summary["held_nusd"], summary["balance_nusd"]) == (0, 10_000_000_000)


def test_the_plan_limit_holds_across_two_server_processes_with_headers_on_200_and_429(world):
    buyer = world.buyer(plan="free")  # 10 requests/minute
    world.listing(key="sim-e2e-limits?tokens=3")
    for server in world.servers:
        world.routable(MODEL, 1, server=server)
    if time.time() % 60 > 50:  # the limits count per clock minute: all 12 in one window
        time.sleep(60 - time.time() % 60 + 0.1)
    responses = []
    for i in range(12):
        server = world.servers[i % 2]
        responses.append(
            httpx.post(
                server.url + "/v1/chat/completions",
                json={"model": MODEL, "messages": HELLO, "max_tokens": 10},
                headers={"Authorization": f"Bearer {buyer.key}"},
            )
        )
    assert [r.status_code for r in responses] == [200] * 10 + [429] * 2
    first, last_ok, refused = responses[0], responses[9], responses[10]
    for response in (first, last_ok, refused):
        for header in (
            "x-ratelimit-remaining",
            "x-ratelimit-reset",
            "x-ratelimit-limit-requests",
            "x-ratelimit-limit-tokens",
            "x-ratelimit-remaining-requests",
            "x-ratelimit-remaining-tokens",
            "x-ratelimit-reset-requests",
            "x-ratelimit-reset-tokens",
        ):
            assert header in response.headers, header
    assert first.headers["x-ratelimit-limit-requests"] == "10"
    assert first.headers["x-ratelimit-remaining-requests"] == "9"
    assert last_ok.headers["x-ratelimit-remaining-requests"] == "0"
    assert refused.headers["x-ratelimit-limit-tokens"] == "40000"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.json()["error"]["type"] == "rate_limit_exceeded"
    assert refused.json()["error"]["code"] == 429
