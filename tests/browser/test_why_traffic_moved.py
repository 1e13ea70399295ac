"""The seller's "why traffic moved" card in headless Chromium, against the real server: requests a
script sends are counted by the gateway as it routes them, flushed to the table in the background,
and shown on the listing's page by reason with the advice; the window links work without
JavaScript (var/screenshots/why_traffic_moved.png)."""

import time

import httpx
import pytest

from tests.browser.chromium import CHROMIUM, CHROMIUM_ARGS, log_in, screenshot_dir
from tests.market.factories import seller_make

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.django_db(transaction=True)]
MODEL = "deepseek/deepseek-chat"
FLUSHED_WITHIN = 25.0  # gateway/route_outcomes.FLUSH_SECONDS (10) and some slack


def _send(world, buyer, n: int, headers: dict[str, str]) -> list[str]:
    served = []
    for _ in range(n):
        answer = httpx.post(
            world.base + "/chat/completions",
            json={"model": MODEL, "messages": [{"role": "user", "content": "Hi"}]},
            headers={"Authorization": f"Bearer {buyer.key}", **headers},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        served.append(answer.headers["x-df-market-listing-id"])
    return served


def _counted(world, listing_id: int) -> dict[str, int]:
    from django.db.models import Sum

    from market.models import RouteOutcome

    rows = world.db(
        lambda: list(
            RouteOutcome.objects.filter(listing_id=listing_id)
            .values("reason")
            .annotate(n=Sum("requests"))
        )
    )
    return {row["reason"]: row["n"] for row in rows}


def test_the_seller_sees_why_traffic_moved(world):
    from playwright.sync_api import expect, sync_playwright

    seller = world.db(seller_make)
    mine = world.listing(
        seller=seller, key="sim-br-tm-mine", percent=90, trusted=True, name="My DeepSeek"
    )
    rival = world.listing(key="sim-br-tm-rival", percent=50, name="Rival DeepSeek")
    world.routable(MODEL, 2)
    buyer = world.buyer()
    assert set(_send(world, buyer, 4, {})) == {str(rival.pk)}
    assert set(_send(world, buyer, 2, {"X-Max-Price": "0.30"})) == {str(rival.pk)}
    assert set(_send(world, buyer, 3, {"X-Privacy-Mode": "trusted_only"})) == {str(mine.pk)}
    expected = {"cheaper": 4, "max_price": 2, "won": 3}
    deadline = time.monotonic() + FLUSHED_WITHIN
    while _counted(world, mine.pk) != expected and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _counted(world, mine.pk) == expected

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(15_000)
            log_in(page, world.server.url, seller.email)
            page.goto(world.server.url + f"/seller/listings/{mine.pk}/?window=1h")
            card = page.locator("#traffic-moved")
            expect(card.locator("h2")).to_have_text("Why traffic moved, last hour")
            expect(page.locator("#traffic-total")).to_contain_text(
                "9 requests for this listing's models reached the market; it served 3 (33.3%)"
            )
            rows = page.locator("#traffic-reasons tbody tr")
            expect(rows).to_have_count(3)
            expect(rows.nth(0)).to_contain_text("A cheaper eligible listing served it")
            expect(rows.nth(0)).to_contain_text(
                "your ask is 80% above the cheapest healthy listing ($0.375 against your $0.675"
            )
            expect(rows.nth(1)).to_contain_text("Served by this listing")
            expect(rows.nth(2)).to_contain_text("Input ask above the buyer's price cap")
            expect(card.locator("svg.chart rect.segment")).not_to_have_count(0)
            expect(card).not_to_contain_text("Rival DeepSeek")
            page.screenshot(path=str(screenshot_dir() / "why_traffic_moved.png"), full_page=True)
            page.click("#traffic-windows >> text=Last 7 days")  # a link: no JavaScript needed
            page.wait_for_url("**window=7d**")
            expect(card.locator("h2")).to_have_text("Why traffic moved, last 7 days")
            expect(page.locator("#traffic-total")).to_contain_text("9 requests")
        finally:
            browser.close()
