"""SLA refunds through the real server, the simulator and the official SDK: a stream sent with
X-Hard-Max-TTFT-Ms to a listing measured within it, whose first token then comes late, is not
charged (usage.cost 0, the wallet untouched, no settlement in the ledger, the waived cost on the
usage record and on /v1/generation); the same promise kept is charged as usual."""

import time

import httpx
import pytest

from billing.models import LedgerAccount, LedgerTransaction
from billing.money import cost_nusd, usd_to_nusd
from market.health_record import health_report

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
MODEL = "deepseek/deepseek-chat"
HELLO = [{"role": "user", "content": "Hello!"}]
KEY = "sim-e2e-sla"
PROMISE = {"X-Hard-Max-TTFT-Ms": "1000"}


def _measured_fast(world, listing) -> None:
    """Five quick first tokens on record, and the server's routing table showing them."""
    for _ in range(5):
        world.db(
            health_report,
            listing_id=listing.pk,
            ok=True,
            status_code=200,
            ttft_ms=60.0,
            tokens_per_second=None,
            passive=True,
        )
    deadline = time.monotonic() + 10
    while httpx.get(f"{world.base}/models/{MODEL}", timeout=2).json().get("ttft_ms") is None:
        assert time.monotonic() < deadline, "the listing's TTFT never reached the routing table"
        time.sleep(0.1)


def _stream(world, buyer):
    stream = world.client(buyer.key).chat.completions.create(
        model=MODEL,
        messages=HELLO,
        stream=True,
        stream_options={"include_usage": True},
        extra_headers=PROMISE,
    )
    chunks = list(stream)
    return chunks[-1].usage, stream.response.headers["x-df-market-request-id"]


def _earnings(seller) -> int:
    account = LedgerAccount.objects.filter(user=seller, kind="earnings").first()
    return 0 if account is None else account.balance_nusd


def test_a_first_token_later_than_promised_is_not_charged(world):
    buyer = world.buyer()
    listing = world.listing(key=f"{KEY}?tokens=8")
    world.routable(MODEL, 1)
    _measured_fast(world, listing)
    before = world.wallet(buyer)
    world.sim.app.registry.set_runtime(KEY, {"ttft_ms": 1300})

    usage, request_id = _stream(world, buyer)

    record = world.usage(request_id)
    priced = cost_nusd(units=record.input_units, price_per_million_nusd=record.ask_input_nusd) + (
        cost_nusd(units=record.output_units, price_per_million_nusd=record.ask_output_nusd)
    )
    assert usd_to_nusd(repr(usage.cost)) == 0 and usage.completion_tokens == 8
    assert record.ttft_ms >= 1300 and record.sla_max_ttft_ms == 1000
    assert (record.cost_nusd, record.buyer_debit_nusd, record.seller_credit_nusd) == (0, 0, 0)
    assert record.sla_waived_nusd == priced > 0
    assert world.wallet(buyer)["balance_nusd"] == before["balance_nusd"]
    assert world.db(_earnings, listing.seller) == 0
    assert not world.db(lambda: LedgerTransaction.objects.filter(request_id=request_id).exists())

    shown = httpx.get(
        f"{world.base}/generation",
        params={"id": request_id},
        headers={"Authorization": f"Bearer {buyer.key}"},
        timeout=5,
    ).json()["data"]
    assert shown["sla"] == {
        "max_ttft_ms": 1000,
        "breached": True,
        "waived": priced / 1e9,
        "waived_nusd": priced,
    }
    assert shown["total_cost"] == 0


def test_a_kept_promise_is_charged_as_usual(world):
    buyer = world.buyer()
    listing = world.listing(key=f"{KEY}-kept?tokens=8")
    world.routable(MODEL, 1)
    _measured_fast(world, listing)

    usage, request_id = _stream(world, buyer)

    record = world.usage(request_id)
    assert record.sla_max_ttft_ms == 1000 and record.sla_waived_nusd == 0
    assert usd_to_nusd(repr(usage.cost)) == record.buyer_debit_nusd == record.cost_nusd > 0
    assert world.db(_earnings, listing.seller) == record.seller_credit_nusd > 0
