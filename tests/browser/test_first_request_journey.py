"""From the sign-up page to a working key, against the real server (Daphne, /v1, the simulator).

A new buyer signs up in Chromium, reads the verification mail the server wrote to var/mail/,
verifies, accepts the Trading Terms, creates a key, and makes a first request with the openai SDK
using exactly the base URL and model the Quick start page shows. The $1 credit pays for it.
"""

import re
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings

from tests.browser.chromium import CHROMIUM, CHROMIUM_ARGS

# The real-server fixtures (two Daphne processes, the simulator, committed data) of tests/e2e.

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PASSWORD = "a-long-enough-passphrase-42"


def _mail_to(address: str, *, since: float, timeout: float = 10.0) -> str:
    """The body of the newest mail the server wrote for `address` (the embedded file backend)."""
    folder = Path(settings.EMAIL_FILE_PATH)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in sorted(folder.glob("*.log"), key=lambda p: p.stat().st_mtime, reverse=True):
            if path.stat().st_mtime < since:
                break
            text = path.read_text(errors="replace")
            if f"To: {address}" in text:
                return text
        time.sleep(0.1)
    raise AssertionError(f"no mail to {address} in {folder}")


def test_a_new_buyer_goes_from_the_signup_page_to_a_working_key_with_one_dollar(world):
    from playwright.sync_api import expect, sync_playwright

    from billing.selectors import wallet_summary

    world.listing()
    world.routable("deepseek/deepseek-chat", 1)
    email = f"first-{uuid.uuid4().hex[:10]}@example.com"
    base = world.server.url
    started = time.time() - 1

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(15_000)
            page.goto(base + "/accounts/signup/")
            page.fill('input[name="email"]', email)
            page.fill('input[name="password1"]', PASSWORD)
            page.fill('input[name="password2"]', PASSWORD)
            page.click('form button[type="submit"]')
            expect(page.locator("h1")).to_have_text("Check your inbox")

            mail = _mail_to(email, since=started)
            link = re.search(r"https?://[^/\s]+(/accounts/confirm-email/\S+/)", mail)
            assert link, mail
            page.goto(base + link.group(1))
            page.click('form button[type="submit"]')
            expect(page.locator("#balance")).to_have_text("$1.00")

            page.goto(base + "/dashboard/terms/")
            page.click('#terms-pending button:has-text("Accept version")')
            expect(page.locator("#terms-accepted")).to_be_visible()

            page.goto(base + "/dashboard/keys/")
            page.fill('input[name="name"]', "first key")
            page.click('button:has-text("Create key")')
            secret = page.locator("#new-key-secret").inner_text().strip()

            page.goto(base + "/dashboard/quickstart/")
            model = page.locator("#quickstart-model").inner_text().strip()
            snippet = page.locator("pre code").nth(1).inner_text()
            api_base = re.search(r'base_url="([^"]+)"', snippet).group(1)
        finally:
            browser.close()

    assert (model, api_base) == ("deepseek/deepseek-chat", base + "/v1")
    import openai

    client = openai.OpenAI(base_url=api_base, api_key=secret, max_retries=0, timeout=30)
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": "Hello!"}]
    )
    assert raw.http_response.status_code == 200
    assert raw.parse().choices[0].message.content
    record = world.usage(raw.headers["x-df-market-request-id"])
    assert record is not None and record.cost_nusd > 0

    from accounts.models import User

    user = world.db(User.objects.get, email=email)
    wallet = world.db(wallet_summary, user=user)
    assert wallet["balance_nusd"] == 1_000_000_000 - record.cost_nusd
