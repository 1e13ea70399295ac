"""The buyer's first minutes in a real browser: sign up, verify by mail, log in, accept the Trading
Terms, create a key, see it once, spend, revoke; every dashboard page at desktop and phone widths.

Screenshots go to $DRAGONFLY_SCREENSHOT_DIR (default var/screenshots) to be looked at.
"""

import re
from pathlib import Path

import pytest

from accounts import keys
from accounts.models import AccessKey, User
from tests.browser.chromium import CHROMIUM, CHROMIUM_ARGS, screenshot_dir

PASSWORD = "a-long-enough-passphrase-42"
EMAIL = "journey@example.com"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
MODEL = "deepseek/deepseek-chat"


def _market_with_a_live_seller() -> None:
    """Published buyer terms and one active listing, so the Quick start has a live model."""
    from allauth.account.models import EmailAddress

    from market import services as market_services
    from market.models import CatalogModel, ListingStatus, Provider

    market_services.terms_publish(audience="buyer", title="Buyer Trading Terms", body="Be fair.")
    market_services.terms_publish(audience="seller", title="Seller Trading Terms", body="Deliver.")
    provider, _ = Provider.objects.get_or_create(
        slug="deepseek", defaults={"name": "DeepSeek", "base_url": "http://127.0.0.1:9/ds"}
    )
    model, _ = CatalogModel.objects.get_or_create(
        model_id=MODEL,
        defaults={
            "provider": provider,
            "upstream_name": "deepseek-chat",
            "list_input_nusd": 500_000_000,
            "list_output_nusd": 1_500_000_000,
        },
    )
    seller = User.objects.create_user("seller-journey@example.com", PASSWORD)
    EmailAddress.objects.create(user=seller, email=seller.email, verified=True, primary=True)
    market_services.terms_accept(user=seller, audience="seller", ip_address=None)
    market_services.listing_create(
        seller=seller,
        provider=provider,
        name="journey seller",
        upstream_key="sk-upstream-journey-1234567890",
        offers=[
            market_services.OfferInput(
                model=model, ask_input_nusd=400_000_000, ask_output_nusd=1_200_000_000
            )
        ],
        status=ListingStatus.ACTIVE,
        verify=False,
    )


def _spend_with(key: AccessKey) -> None:
    """One request's money as the gateway moves it: a hold, then its settlement."""
    from billing import services as billing_services
    from billing.settlement_data import Settlement
    from market.models import Listing

    listing = Listing.objects.get()
    billing_services.hold_place(
        request_id="journey-1", user_id=key.user_id, amount_nusd=200_000_000
    )
    billing_services.request_settle(
        settlement=Settlement(
            request_id="journey-1",
            buyer_id=key.user_id,
            access_key_id=key.id,
            listing_id=listing.id,
            seller_id=listing.seller_id,
            model_id=MODEL,
            upstream_model="deepseek-chat",
            price_unit="token",
            ask_input_nusd=400_000_000,
            ask_output_nusd=1_200_000_000,
            input_units=50_000,
            output_units=100_000,
            ttft_ms=150,
            duration_ms=2_000,
            streamed=False,
            outcome="completed",
        )
    )


def _fits_the_width(page) -> None:
    """Nothing makes the page scroll sideways (wide tables scroll inside their own box)."""
    overflow = page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"{page.url} is {overflow}px wider than the viewport"


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_a_buyer_signs_up_verifies_logs_in_and_creates_a_key(live_server, mailoutbox, monkeypatch):
    from playwright.sync_api import expect, sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM calls below are still sync.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    shots = screenshot_dir()
    _market_with_a_live_seller()

    def shoot(page, name: str) -> Path:
        path = shots / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 10_000
        return path

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=DESKTOP)
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
            # Terms not accepted yet: the overview says so and links the page that fixes it.
            page.click('.dashboard-main a[href="/dashboard/terms/"] >> nth=0')
            page.click('#terms-pending button:has-text("Accept version")')
            expect(page.locator("#terms-accepted")).to_be_visible()

            page.click('.sidebar a:has-text("Keys")')
            page.fill('input[name="name"]', "my laptop")
            page.click('button:has-text("Create key")')
            secret = page.locator("#new-key-secret").inner_text().strip()
            assert keys.key_is_well_formed(secret)
            key = AccessKey.objects.get(user__email=EMAIL)
            assert key.key_hash == keys.key_hash(secret)
            shoot(page, "keys_new_desktop")

            page.reload()
            expect(page.locator("#new-key-secret")).to_have_count(0)
            assert secret not in page.content()
            assert key.prefix in page.content()

            _spend_with(key)
            page.click('.sidebar a:has-text("Overview")')
            expect(page.locator("#balance")).to_have_text("$0.86")
            expect(page.locator("svg.chart")).to_be_visible()
            expect(page.locator(".message.warning")).to_have_count(0)
            shoot(page, "overview_desktop")

            page.click('.sidebar a:has-text("Quick start")')
            expect(page.locator("#quickstart-model")).to_have_text(MODEL)
            assert f"curl {live_server.url}/v1/chat/completions" in page.content()
            assert f'base_url="{live_server.url}/v1"' in page.content()
            shoot(page, "quickstart_desktop")

            page.set_viewport_size(PHONE)
            for path, name in (
                ("/dashboard/", "overview_phone"),
                ("/dashboard/keys/", "keys_phone"),
                ("/dashboard/quickstart/", "quickstart_phone"),
                ("/dashboard/profiles/", "profiles_phone"),
            ):
                page.goto(live_server.url + path)
                _fits_the_width(page)
                shoot(page, name)

            # Revoke through the HTMX button: the row turns into "revoked" in place.
            page.goto(f"{live_server.url}/dashboard/keys/")
            page.once("dialog", lambda dialog: dialog.accept())
            page.click(f"#key-{key.id} button:has-text('Revoke')")
            expect(page.locator(f"#key-{key.id} .badge.bad")).to_have_text("revoked")
            key.refresh_from_db()
            assert key.revoked_at is not None
            shoot(page, "keys_revoked_phone")
        finally:
            browser.close()
