"""The usage detail page in headless Chromium, against the real server: a request sent as gpt-4o
failed over from a listing answering 503 to one that served; its page shows the alias, the split
and the attempts table in the order tried (var/screenshots/usage-detail.png)."""

import httpx
import pytest

from tests.browser.chromium import CHROMIUM, CHROMIUM_ARGS, log_in, screenshot_dir

# The real-server fixtures (two Daphne processes, the simulator, committed data) of tests/e2e.

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.django_db(transaction=True)]
MODEL = "deepseek/deepseek-chat"


def test_the_usage_detail_page_shows_the_route_and_its_attempts(world):
    from playwright.sync_api import expect, sync_playwright

    buyer = world.buyer()
    broken = world.listing(key="sim-br-gen-broken?status=503", percent=50)
    good = world.listing(key="sim-br-gen-good", percent=90)
    world.routable(MODEL, 2)
    answer = httpx.post(
        world.base + "/chat/completions",
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}], "stream": True},
        headers={"Authorization": f"Bearer {buyer.key}"},
        timeout=30,
    )
    assert answer.status_code == 200
    request_id = answer.headers["x-df-market-request-id"]
    record = world.usage(request_id)
    assert record is not None

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(15_000)
            log_in(page, world.server.url, buyer.user.email)
            page.goto(world.server.url + "/billing/usage/")
            page.click(f"text={request_id}")  # from the usage list to the request's page
            page.wait_for_url(f"**/billing/usage/{request_id}/")
            expect(page.locator("h1")).to_contain_text(request_id)
            expect(page.locator("#record tr", has_text="Model asked")).to_contain_text(
                "gpt-4o builtin_alias"
            )
            expect(page.locator("#record tr", has_text="Model resolved")).to_contain_text(MODEL)
            expect(page.locator("#buyer-debit")).to_have_text(
                "$" + f"{record.buyer_debit_nusd / 1e9:.10f}".rstrip("0")
            )
            expect(page.locator("#record tr", has_text="Outcome")).to_contain_text(
                "completed (streamed)"
            )
            rows = page.locator("#attempts tbody tr")
            expect(rows).to_have_count(2)
            expect(rows.nth(0)).to_contain_text(f"#{broken.pk}")
            expect(rows.nth(0)).to_contain_text("failed over")
            expect(rows.nth(0)).to_contain_text("http_503")
            expect(rows.nth(1)).to_contain_text(f"#{good.pk}")
            expect(rows.nth(1)).to_contain_text("served")
            page.screenshot(path=str(screenshot_dir() / "usage-detail.png"), full_page=True)
        finally:
            browser.close()
