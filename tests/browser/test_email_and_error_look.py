"""The verification email and the 404 page as a person sees them, in headless Chromium: the
product's brand and colours, the action as a button. Screenshots (var/screenshots/email_verification.png,
page_404.png) are kept to be looked at."""

import pytest

from tests.browser.chromium import CHROMIUM, CHROMIUM_ARGS, screenshot_dir

ACCENT = "rgb(15, 123, 108)"  # --accent in static/css/app.css


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_verification_email_and_the_404_page_look_like_the_product(
    live_server, mailoutbox, monkeypatch
):
    from playwright.sync_api import expect, sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    shots = screenshot_dir()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 800, "height": 900})
            page.set_default_timeout(15_000)
            page.goto(f"{live_server.url}/accounts/signup/")
            page.fill('input[name="email"]', "look@example.com")
            page.fill('input[name="password1"]', "a-long-enough-passphrase-42")
            page.fill('input[name="password2"]', "a-long-enough-passphrase-42")
            page.click('form button[type="submit"]')
            expect(page.locator("h1")).to_have_text("Check your inbox")

            [message] = mailoutbox
            [(html, _)] = message.alternatives
            page.goto("about:blank")  # as a mail client shows it: not under the site's CSP
            page.set_content(html)
            button = page.locator("a:has-text('Confirm my email')")
            expect(button).to_be_visible()
            assert button.evaluate("a => getComputedStyle(a).backgroundColor") == ACCENT
            expect(page.locator("h1")).to_have_text("Confirm your email address")
            page.screenshot(path=str(shots / "email_verification.png"), full_page=True)

            response = page.goto(f"{live_server.url}/no-such-page/")
            assert response is not None and response.status == 404
            expect(page.locator("h1")).to_have_text("This page does not exist")
            code = page.locator(".error-code")
            assert code.evaluate("e => getComputedStyle(e).color") == ACCENT  # our stylesheet
            expect(page.locator("a.brand")).to_have_text("Dragonfly")
            page.screenshot(path=str(shots / "page_404.png"), full_page=True)
        finally:
            browser.close()
