"""The API tokens page in Chromium against the real server: a buyer creates a token with two
scopes, sees its secret once (copy button, curl hint), the secret works on /api/, a reload shows
only the prefix, revoking asks for confirmation and the token stops working. The page is kept as
screenshots in the test's tmp dir."""

import httpx
import pytest

from tests.browser.chromium import CHROMIUM, CHROMIUM_ARGS, log_in

# The real-server fixtures (two Daphne processes, the simulator, committed data) of tests/e2e.

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_buyer_creates_a_token_sees_it_once_and_revokes_it(world, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    buyer = world.buyer()
    base = world.server.url
    dialogs: list[str] = []

    def keys_with(secret: str) -> httpx.Response:
        return httpx.get(
            base + "/api/keys/", headers={"Authorization": f"Bearer {secret}"}, timeout=15
        )

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 1000})
            context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
            page = context.new_page()
            page.set_default_timeout(15_000)
            log_in(page, base, buyer.user.email)
            page.goto(base + "/dashboard/")
            page.click("nav.sidebar >> text=API tokens")
            expect(page.locator("h1")).to_have_text("API tokens")
            expect(page.locator("#token-table tbody")).to_contain_text("No tokens yet.")

            page.fill('input[name="name"]', "deploy bot")
            expect(page.locator('input[name="scopes"][value="read"]')).to_be_checked()
            page.check('input[name="scopes"][value="keys:write"]')
            page.select_option('select[name="expires"]', "90")
            page.click('button:has-text("Create token")')
            secret = page.locator("#new-token-secret").inner_text().strip()
            assert secret.startswith("df-pat-") and len(secret) == 47
            page.click("#copy-key")
            expect(page.locator("#copy-key")).to_have_text("Copied")
            assert page.evaluate("navigator.clipboard.readText()") == secret
            row = page.locator("#token-table tbody tr").first
            expect(row).to_contain_text("deploy bot")
            expect(row).to_contain_text("keys:write")
            page.screenshot(path=str(tmp_path / "token-created.png"), full_page=True)

            assert keys_with(secret).status_code == 200

            # A new visit (GET; a reload would resend the POST, which the live name refuses).
            page.goto(base + "/dashboard/tokens/")
            assert secret not in page.content()
            expect(page.locator("#new-token")).to_have_count(0)
            expect(row).to_contain_text(secret[:15] + "…")

            page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.accept()))
            row.locator('button:has-text("Revoke")').click()
            expect(row.locator(".badge.bad")).to_have_text("revoked")
            page.screenshot(path=str(tmp_path / "token-revoked.png"), full_page=True)

            page.click("nav.sidebar >> text=API docs")
            expect(page.locator("h1")).to_contain_text("Dragonfly management API")
            expect(page.locator("body")).to_contain_text("Authorization: Bearer df-pat-")
        finally:
            browser.close()

    from accounts.models import PersonalToken

    assert world.db(PersonalToken.objects.filter(user=buyer.user).count) == 1
    assert dialogs == ["Revoke deploy bot? Scripts using it are refused from the next request."]
    refused = keys_with(secret)
    assert refused.status_code == 401
    assert refused.json() == {"detail": "This personal token was revoked."}
    print(f"screenshots: {tmp_path}")
