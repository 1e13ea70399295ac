"""Every kind of page works under the Content-Security-Policy: Chromium reports no violation.

tests/deploy/test_topology.py checks the same over https through nginx on a buyer's path; this one
covers the rest of the site (allauth's pages, the seller portal, the admin) quickly, on live_server.
"""

import pytest

from tests.accounts.factories import user_make
from tests.browser.chromium import CHROMIUM, CHROMIUM_ARGS, log_in
from tests.gateway import factories
from tests.market.factories import listing_make, seller_make
from tests.operators import operator_enrol, totp_code

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

RECORD_VIOLATIONS = (
    "window.__cspViolations = [];"
    "document.addEventListener('securitypolicyviolation', e =>"
    " window.__cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));"
)
SIGNED_OUT = [
    "/",
    "/accounts/login/",
    "/accounts/signup/",
    "/accounts/password/reset/",
    "/market/",
    "/no-such-page/",  # the 404 page
]
BUYER = [
    "/dashboard/",
    "/dashboard/quickstart/",
    "/dashboard/playground/",
    "/dashboard/keys/",
    "/dashboard/tokens/",
    "/api/docs/",
    "/dashboard/profiles/",
    "/dashboard/profiles/new/",
    "/dashboard/terms/",
    "/dashboard/promises/",
    "/billing/",
    "/billing/usage/",
    "/billing/disputes/",
    "/market/deepseek/deepseek-chat/",
    "/seller/",
    "/seller/listings/new/",
    "/accounts/email/",
    "/accounts/password/change/",
]
OPERATOR = [
    "/admin/",
    "/admin/accounts/user/",
    "/admin/accounts/personaltoken/",
    "/admin/market/listing/",
    "/admin/billing/topup/",
    "/admin/billing/dispute/",
]


def test_no_page_breaks_the_content_security_policy(live_server, monkeypatch):
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's sync API, then the ORM
    factories.market_make("http://127.0.0.1:9")
    listing = listing_make(seller_make())
    buyer = factories.buyer_make()
    operator = user_make()
    operator.is_staff = operator.is_superuser = True
    operator.save()
    secret = operator_enrol(operator)  # the admin opens after the TOTP code
    base = live_server.url
    violations: dict[str, list[str]] = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for user, paths in (
                (None, SIGNED_OUT),
                (buyer.user, BUYER),
                (listing.seller, [f"/seller/listings/{listing.id}/", "/billing/earnings/"]),
                (operator, [*OPERATOR, f"/admin/accounts/user/{buyer.user.id}/change/"]),
            ):
                context = browser.new_context()
                context.add_init_script(RECORD_VIOLATIONS)
                page = context.new_page()
                page.set_default_timeout(15_000)
                if user is not None:
                    log_in(page, base, user.email)
                if user is operator:
                    violations["/accounts/2fa/authenticate/"] = page.evaluate(
                        "() => window.__cspViolations"
                    )
                    page.fill('input[name="code"]', totp_code(secret))
                    page.click('form button[type="submit"]')
                    page.wait_for_url(lambda url: "/accounts/2fa/" not in url)
                for path in paths:
                    response = page.goto(base + path)
                    assert response.status == (404 if path == "/no-such-page/" else 200), path
                    if path.startswith("/admin/"):  # the admin itself, past its second factor
                        assert page.url == base + path
                    assert "script-src 'self'" in response.headers["content-security-policy"]
                    violations[path] = page.evaluate("() => window.__cspViolations")
                context.close()
        finally:
            browser.close()
    assert {path: found for path, found in violations.items() if found} == {}
    assert len(violations) == 34
