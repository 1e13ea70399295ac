"""Operators in a real browser: the admin sends a staff member to allauth's login, then asks for
the authenticator code (computed here, RFC 6238); a staff member without an authenticator enrols
one from the QR page first. Screenshots go to $DRAGONFLY_SCREENSHOT_DIR (default var/screenshots).
"""

import re

import pytest
from allauth.account.models import EmailAddress

from accounts.models import User
from tests.browser.chromium import CHROMIUM, CHROMIUM_ARGS, screenshot_dir
from tests.operators import operator_enrol, totp_code

PASSWORD = "a-long-enough-passphrase-42"
DESKTOP = {"width": 1280, "height": 900}


def _staff(email: str) -> User:
    user = User.objects.create_user(email, PASSWORD, is_staff=True, is_superuser=True)
    EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
    return user


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_a_staff_login_goes_through_the_password_then_a_totp_code(live_server, monkeypatch):
    from playwright.sync_api import expect, sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    shots = screenshot_dir()
    secret = operator_enrol(_staff("ops@example.com"))
    _staff("new-ops@example.com")

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=DESKTOP)
            page.set_default_timeout(15_000)
            page.goto(f"{live_server.url}/admin/billing/payout/")
            page.wait_for_url(re.compile(r"/accounts/login/\?next="))
            page.fill('input[name="login"]', "ops@example.com")
            page.fill('input[name="password"]', PASSWORD)
            page.click('form button[type="submit"]')
            page.wait_for_url(re.compile(r"/accounts/2fa/authenticate/"))
            page.fill('input[name="code"]', "000000")
            page.click('form button[type="submit"]')
            expect(page.locator("body")).to_contain_text("Incorrect code.")
            page.fill('input[name="code"]', totp_code(secret))
            page.screenshot(path=str(shots / "operator-login-totp.png"), full_page=True)
            page.click('form button[type="submit"]')
            page.wait_for_url(re.compile(r"/admin/billing/payout/$"))
            expect(page.locator("#content h1")).to_have_text("Select payout to view")
            page.screenshot(path=str(shots / "operator-admin-after-totp.png"), full_page=True)

            # A staff member without an authenticator enrols one before the admin opens.
            fresh = browser.new_page(viewport=DESKTOP)
            fresh.set_default_timeout(15_000)
            fresh.goto(f"{live_server.url}/admin/")
            fresh.fill('input[name="login"]', "new-ops@example.com")
            fresh.fill('input[name="password"]', PASSWORD)
            fresh.click('form button[type="submit"]')
            fresh.wait_for_url(re.compile(r"/accounts/reauthenticate/"))
            expect(fresh.locator("body")).to_contain_text("Operators sign in with a second factor")
            fresh.fill('input[name="password"]', PASSWORD)
            fresh.click('form button[type="submit"]')
            fresh.wait_for_url(re.compile(r"/accounts/2fa/totp/activate/"))
            expect(fresh.locator("img[src^='data:image/svg+xml']")).to_be_visible()
            fresh.screenshot(path=str(shots / "operator-totp-enrol.png"), full_page=True)
            new_secret = fresh.locator("#authenticator_secret").input_value()
            fresh.fill('input[name="code"]', totp_code(new_secret))
            fresh.click('form button[type="submit"]')
            fresh.wait_for_url(re.compile(r"/accounts/2fa/recovery-codes/"))
            fresh.goto(f"{live_server.url}/admin/")
            fresh.wait_for_url(re.compile(r"/accounts/2fa/reauthenticate/"))
            fresh.fill('input[name="code"]', totp_code(new_secret))
            fresh.click('form button[type="submit"]')
            fresh.wait_for_url(re.compile(r"/admin/$"))
            expect(fresh.locator("body")).to_contain_text("Site administration")
        finally:
            browser.close()
    for name in ("operator-login-totp", "operator-admin-after-totp", "operator-totp-enrol"):
        assert (shots / f"{name}.png").stat().st_size > 10_000
