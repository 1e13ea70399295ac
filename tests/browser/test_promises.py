"""The promises in headless Chromium against the real server: a request whose listing broke its
time-to-first-token promise shows on its usage page as not charged, with what was waived, and the
Promises page the dashboard links to explains all four (var/screenshots/sla-refund.png,
var/screenshots/promises.png)."""

import httpx
import pytest

from tests.browser.chromium import CHROMIUM, CHROMIUM_ARGS, log_in, screenshot_dir
from tests.e2e.test_e2e_sla_refunds import _measured_fast

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.django_db(transaction=True)]
MODEL = "deepseek/deepseek-chat"


def test_a_broken_promise_on_the_usage_page_and_the_promises_page(world):
    from playwright.sync_api import expect, sync_playwright

    buyer = world.buyer()
    listing = world.listing(key="sim-br-sla?tokens=8")
    world.routable(MODEL, 1)
    _measured_fast(world, listing)
    world.sim.app.registry.set_runtime("sim-br-sla", {"ttft_ms": 1300})
    answer = httpx.post(
        world.base + "/chat/completions",
        json={"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "stream": True},
        headers={"Authorization": f"Bearer {buyer.key}", "X-Hard-Max-TTFT-Ms": "1000"},
        timeout=30,
    )
    assert answer.status_code == 200
    request_id = answer.headers["x-df-market-request-id"]
    assert world.usage(request_id).sla_breached

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(15_000)
            log_in(page, world.server.url, buyer.user.email)
            page.goto(f"{world.server.url}/billing/usage/{request_id}/")
            sla = page.locator("#sla")
            expect(sla).to_contain_text("1000 ms")
            expect(sla).to_contain_text("broken")
            expect(sla).to_contain_text("not charged")
            expect(page.locator("#buyer-debit")).to_have_text("$0.00")
            page.screenshot(path=str(screenshot_dir() / "sla-refund.png"), full_page=True)

            page.click("nav >> text=Promises")
            page.wait_for_url("**/dashboard/promises/")
            for section in ("sla", "price-lock", "authenticity", "disputes"):
                expect(page.locator(f"#promise-{section}")).to_be_visible()
            expect(page.locator("#promise-price-lock")).to_contain_text("30 minutes")
            expect(page.locator("#promise-authenticity")).to_contain_text("every 6 hours")
            page.screenshot(path=str(screenshot_dir() / "promises.png"), full_page=True)
        finally:
            browser.close()
