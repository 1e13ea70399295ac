"""The journey the mission promises, in a real browser against the real server.

A buyer's SDK request is routed through the market; the buyer's dashboard shows the exact charge
and balance; the seller's earnings page shows the same amount less the fee.
"""

from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from billing.money import format_usd

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.django_db(transaction=True)]
CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
PASSWORD = "pw-123456789"  # tests/gateway/factories.user_make


def _log_in(page, base: str, email: str) -> None:
    page.goto(base + "/accounts/login/")
    page.fill("input[name=login]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/accounts/login/" not in url)


def test_the_buyer_sees_the_exact_charge_and_the_seller_the_same_less_the_fee(world):
    buyer = world.buyer(credit_usd="1")
    listing = world.listing()
    world.routable("deepseek/deepseek-chat", 1)

    raw = world.client(buyer.key).chat.completions.with_raw_response.create(
        model="deepseek/deepseek-chat",
        messages=[{"role": "user", "content": "What is 2+2? Explain it to a child."}],
    )
    assert raw.http_response.status_code == 200
    assert raw.headers["x-df-market-route"] == "seller"
    record = world.usage(raw.headers["x-df-market-request-id"])
    assert record is not None
    assert record.cost_nusd > 0
    assert record.seller_credit_nusd == record.cost_nusd - record.fee_nusd
    balance_nusd = 1_000_000_000 - record.cost_nusd

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        try:
            buyer_page = browser.new_context(viewport={"width": 1200, "height": 900}).new_page()
            _log_in(buyer_page, world.server.url, buyer.user.email)
            buyer_page.goto(world.server.url + "/dashboard/")
            balance = buyer_page.locator(".stat").first.inner_text()
            assert balance == format_usd(balance_nusd)
            buyer_page.goto(world.server.url + "/billing/usage/")
            row = buyer_page.locator("tr", has_text=record.request_id)
            assert format_usd(record.cost_nusd) in row.inner_text()
            buyer_page.screenshot(path=str(SHOTS / "buyer_usage.png"), full_page=True)

            seller_page = browser.new_context(viewport={"width": 1200, "height": 900}).new_page()
            _log_in(seller_page, world.server.url, listing.seller.email)
            seller_page.goto(world.server.url + "/billing/earnings/")
            listing_row = seller_page.locator("tr", has_text=listing.name)
            cells = listing_row.inner_text()
            assert format_usd(record.cost_nusd) in cells
            assert format_usd(record.fee_nusd) in cells
            assert format_usd(record.seller_credit_nusd) in cells
            seller_page.screenshot(path=str(SHOTS / "seller_earnings.png"), full_page=True)
        finally:
            browser.close()
