"""Authenticity probes through the real servers and the simulator: a listing that answers with a
cheaper model takes the buyer's first request (it asks least), the probe sweep catches it (the
`model` the upstream names, then its tokenizer's count), it is suspended and its seller emailed,
what it served is refunded, and both servers route the next request to the honest listing. An
honest listing is never flagged."""

import pytest
from playwright.sync_api import sync_playwright

from billing.models import LedgerTransaction
from dragonfly.celery import app as celery_app
from market import tasks
from market.models import AuthenticityCheck, CatalogModel, Listing
from tests.browser.chromium import CHROMIUM, CHROMIUM_ARGS, log_in, screenshot_dir

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
MODEL = "deepseek/deepseek-chat"
HELLO = [{"role": "user", "content": "Hello!"}]
SUBSTITUTE = "qwen2.5-7b-instruct"


@pytest.fixture
def eager_tasks():
    """The confirmation probe runs inline, as with the embedded default's Celery."""
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


def _ledger(request_id: str) -> list[tuple[str, str, str, int]]:
    return [
        (
            t.kind,
            e.account.kind,
            e.account.user.email if e.account.user else "platform",
            e.amount_nusd,
        )
        for t in LedgerTransaction.objects.filter(request_id=request_id).order_by("pk")
        for e in t.entries.select_related("account__user").order_by("pk")
    ]


def _served(world, buyer) -> tuple[int, str]:
    """The listing that served one chat request, and the request id."""
    completion = world.client(buyer.key).chat.completions.with_raw_response.create(
        model=MODEL, messages=HELLO
    )
    request_id = completion.headers["x-df-market-request-id"]
    record = world.usage(request_id)
    assert record is not None and record.outcome == "completed"
    return record.listing_id, request_id


def test_a_substituted_model_is_caught_and_traffic_moves_to_the_honest_listing(
    world, eager_tasks, mailoutbox
):
    buyer = world.buyer()
    honest = world.listing(key="sim-e2e-auth-honest", percent=90, trusted=True)
    substitute = world.listing(key=f"sim-e2e-auth-sub?as_model={SUBSTITUTE}", percent=50)
    for server in world.servers:
        world.routable(MODEL, 2, server=server)

    served_by, before = _served(world, buyer)
    assert served_by == substitute.pk  # the cheapest ask wins until it is caught
    print("request served by the substitute:", before, world.db(_ledger, before))

    world.db(tasks.authenticity_probe_all_task)  # what beat runs; the recheck runs inline

    caught = world.db(Listing.objects.get, pk=substitute.pk)
    assert caught.status == "suspended"
    assert f'answered as "{SUBSTITUTE}"' in caught.status_reason
    assert [m.to for m in mailoutbox] == [[substitute.seller.email]]
    checks = world.db(
        lambda: list(
            AuthenticityCheck.objects.order_by("pk").values_list(
                "listing_id",
                "verdict",
                "answered_model",
                "expected_prompt_tokens",
                "answered_prompt_tokens",
            )
        )
    )
    learned = world.db(CatalogModel.objects.get, model_id=MODEL).probe_prompt_tokens
    print("authenticity checks:", checks, "fingerprint:", learned)
    # The sweep asks both; the confirmation asks the substitute again and the trusted listing.
    assert sorted(v for _, v, *_ in checks) == ["failed", "failed", "passed", "passed"]
    assert {c[1] for c in checks if c[0] == honest.pk} == {"passed"}
    assert learned is not None  # learned from the trusted honest listing

    # What the substitute served is given back: the buyer's debit, the seller's credit and the fee
    # each reversed by a refund transaction (Trading Terms v3, clause 8), so every account nets 0.
    assert "is refunded to its buyers from your earnings" in caught.status_reason
    rows = world.db(_ledger, before)
    print("the substitute's request after the refund:", before, rows)
    assert [kind for kind, *_ in rows].count("refund") == 3  # wallet, earnings, fee revenue
    net: dict[tuple[str, str], int] = {}
    for _, account, owner, amount in rows:
        net[account, owner] = net.get((account, owner), 0) + amount
    assert set(net.values()) == {0}, net
    assert world.usage(before).refunded_at is not None

    for server in world.servers:
        world.routable(MODEL, 1, server=server)
    served_by, after = _served(world, buyer)
    assert served_by == honest.pk
    assert world.db(Listing.objects.get, pk=honest.pk).status == "active"
    print("next request, served by the honest listing:", after, world.db(_ledger, after))
    assert world.usage(after).refunded_at is None

    # The seller sees what was asked, expected and answered, and why the listing is suspended.
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport={"width": 1200, "height": 900}).new_page()
            log_in(page, world.server.url, substitute.seller.email)
            page.goto(f"{world.server.url}/seller/listings/{substitute.pk}/")
            table = page.locator("#authenticity-checks")
            assert table.locator("tbody tr").count() == 4  # two checks, each with its reason
            assert SUBSTITUTE in table.inner_text()
            assert (
                "failed twice in its last three checks"
                in page.locator("#traffic-note").inner_text()
            )
            table.scroll_into_view_if_needed()
            page.screenshot(path=str(screenshot_dir() / "seller_authenticity.png"), full_page=True)
        finally:
            browser.close()
