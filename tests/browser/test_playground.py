"""The dashboard's playground, driven in Chromium against the real server: a buyer pastes a key,
sends a message with a routing header, and sees the answer, the route diagnostics of the listing
that served it and a link to exactly what it was charged; a constraint no seller meets shows the
market's 503 as sent; a streamed answer arrives with its time to first token. The page is kept as a screenshot (var/screenshots/playground.png)."""

import pytest

from tests.browser.chromium import CHROMIUM, CHROMIUM_ARGS, log_in, screenshot_dir

# The real-server fixtures (two Daphne processes, the simulator, committed data) of tests/e2e.

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_buyer_sends_a_request_from_the_playground_and_sees_its_route_and_charge(world):
    from playwright.sync_api import expect, sync_playwright

    from billing.models import UsageRecord
    from billing.money import format_usd

    listing = world.listing()
    world.routable("deepseek/deepseek-chat", 1)
    buyer = world.buyer()
    base = world.server.url
    screenshots = screenshot_dir()

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            page.set_default_timeout(15_000)
            log_in(page, base, buyer.user.email)
            page.goto(base + "/dashboard/playground/")
            expect(page.locator("#pg-model")).to_have_value("deepseek/deepseek-chat")

            page.fill("#pg-key", buyer.key)
            page.fill("#pg-message", "Hello from the playground!")
            page.click("#pg-routing summary")
            page.fill("#pg-provider-only", "deepseek")
            page.click("#pg-send")
            expect(page.locator("#pg-outcome")).to_contain_text("HTTP 200")
            assert page.locator("#pg-answer").inner_text().strip()
            expect(page.locator("#pg-usage")).to_contain_text("completion tokens")
            diagnostics = {
                row.get_attribute("data-header"): row.locator("td").nth(1).inner_text()
                for row in page.locator("#pg-diagnostics tbody tr").all()
            }
            page.screenshot(path=str(screenshots / "playground.png"), full_page=True)

            request_id = diagnostics["x-df-market-request-id"]
            assert diagnostics["x-df-market-route"] == "seller"
            assert diagnostics["x-df-market-provider"] == "deepseek"
            assert diagnostics["x-df-market-listing-id"] == str(listing.pk)
            page.click("#pg-charge-link")
            expect(page.locator("body")).to_contain_text(request_id)
            charge_page = page.locator("body").inner_text()

            page.go_back()
            if not page.locator("#pg-provider-only").is_visible():
                page.click("#pg-routing summary")
            page.fill("#pg-key", buyer.key)
            page.fill("#pg-provider-only", "minimax")  # no MiniMax seller serves this model
            page.click("#pg-send")
            expect(page.locator("#pg-outcome")).to_contain_text("HTTP 503")
            expect(page.locator("#pg-error-body")).to_contain_text("market_unavailable")
            assert page.locator("#pg-charge").is_hidden()
            page.screenshot(path=str(screenshots / "playground-503.png"), full_page=True)

            page.fill("#pg-provider-only", "")
            page.check("#pg-stream")
            page.click("#pg-send")
            expect(page.locator("#pg-outcome")).to_contain_text("first token after")
            assert page.locator("#pg-answer").inner_text().strip()
            expect(page.locator("#pg-usage")).to_contain_text("finish reason stop")
            page.screenshot(path=str(screenshots / "playground-stream.png"), full_page=True)
            streamed_id = (
                page.locator('#pg-diagnostics tr[data-header="x-df-market-request-id"] td')
                .nth(1)
                .inner_text()
            )
        finally:
            browser.close()

    # The database is read once the browser (and its event loop) is gone.
    record = world.usage(request_id)
    assert record is not None and record.buyer_id == buyer.user.pk
    streamed = world.usage(streamed_id)
    assert streamed is not None and streamed.streamed and streamed.output_units > 0
    assert world.db(UsageRecord.objects.filter(buyer=buyer.user).count) == 2  # the 503 cost nothing
    assert (
        f"You paid\t{format_usd(record.buyer_debit_nusd)}" in charge_page
    )  # the exact charge, as the page shows
