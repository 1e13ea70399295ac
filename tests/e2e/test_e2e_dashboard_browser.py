"""The journey the mission promises, in a real browser against the real server.

A buyer's SDK request is routed through the market; the buyer's dashboard shows the exact charge
and balance; the seller's earnings page shows the same amount less the fee.
"""

import pytest
from playwright.sync_api import sync_playwright

from billing.money import format_usd
from tests.browser.chromium import CHROMIUM, CHROMIUM_ARGS, log_in, screenshot_dir

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.django_db(transaction=True)]


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

    shots = screenshot_dir()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            buyer_page = browser.new_context(viewport={"width": 1200, "height": 900}).new_page()
            log_in(buyer_page, world.server.url, buyer.user.email)
            buyer_page.goto(world.server.url + "/dashboard/")
            balance = buyer_page.locator(".stat").first.inner_text()
            assert balance == format_usd(balance_nusd)
            buyer_page.goto(world.server.url + "/billing/usage/")
            row = buyer_page.locator("tr", has_text=record.request_id)
            assert format_usd(record.cost_nusd) in row.inner_text()
            buyer_page.screenshot(path=str(shots / "buyer_usage.png"), full_page=True)

            seller_page = browser.new_context(viewport={"width": 1200, "height": 900}).new_page()
            log_in(seller_page, world.server.url, listing.seller.email)
            seller_page.goto(world.server.url + "/billing/earnings/")
            listing_row = seller_page.locator("tr", has_text=listing.name)
            cells = listing_row.inner_text()
            assert format_usd(record.cost_nusd) in cells
            assert format_usd(record.fee_nusd) in cells
            assert format_usd(record.seller_credit_nusd) in cells
            seller_page.screenshot(path=str(shots / "seller_earnings.png"), full_page=True)
        finally:
            browser.close()
