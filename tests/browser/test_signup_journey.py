"""The buyer's first minutes in a real browser: sign up, verify by mail, log in, create a key."""

import re
from pathlib import Path

import pytest
from django.conf import settings

from accounts import keys
from accounts.models import AccessKey

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = "a-long-enough-passphrase-42"
EMAIL = "journey@example.com"


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_a_buyer_signs_up_verifies_logs_in_and_creates_a_key(live_server, mailoutbox, monkeypatch):
    from playwright.sync_api import expect, sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM calls below are still sync.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    screenshot = Path(settings.BASE_DIR) / "var" / "screenshots" / "signup_journey.png"
    screenshot.parent.mkdir(parents=True, exist_ok=True)

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(15_000)

            page.goto(f"{live_server.url}/accounts/signup/")
            page.fill('input[name="email"]', EMAIL)
            page.fill('input[name="password1"]', PASSWORD)
            page.fill('input[name="password2"]', PASSWORD)
            page.click('form button[type="submit"]')
            expect(page.locator("h1")).to_have_text("Check your inbox")

            assert len(mailoutbox) == 1
            link = re.search(r"https?://[^/\s]+(/accounts/confirm-email/\S+/)", mailoutbox[0].body)
            assert link, mailoutbox[0].body
            page.goto(live_server.url + link.group(1))
            page.click('form button[type="submit"]')
            expect(page.locator("#balance")).to_have_text("$1.00")

            page.click("header form button")  # log out
            page.goto(f"{live_server.url}/accounts/login/")
            page.fill('input[name="login"]', EMAIL)
            page.fill('input[name="password"]', PASSWORD)
            page.click('form button[type="submit"]')
            expect(page.locator("h1")).to_have_text("Overview")

            page.click('.sidebar a:has-text("Keys")')
            page.fill('input[name="name"]', "my laptop")
            page.click('button:has-text("Create key")')
            secret = page.locator("#new-key-secret").inner_text().strip()
            assert keys.key_is_well_formed(secret)
            key = AccessKey.objects.get(user__email=EMAIL)
            assert key.key_hash == keys.key_hash(secret)
            page.screenshot(path=str(screenshot), full_page=True)

            page.reload()
            expect(page.locator("#new-key-secret")).to_have_count(0)
            assert secret not in page.content()
            assert key.prefix in page.content()
        finally:
            browser.close()
    assert screenshot.stat().st_size > 10_000
