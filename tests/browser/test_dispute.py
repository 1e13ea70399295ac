"""A buyer dispute end to end in headless Chromium, against the real server and the simulator: a
request is served and settled, the buyer disputes it from its usage page, an operator (password,
then TOTP) approves it on the admin's decision page, and the buyer's balance and the seller's
earnings move back by exactly the request's amounts, in one refund transaction
(var/screenshots/dispute.png: the buyer's page after the approval; dispute-form.png: the form
filled in; dispute-admin.png: the operator's decision page)."""

import re

import httpx
import pytest

from tests.accounts.factories import PASSWORD, user_make
from tests.browser.chromium import CHROMIUM, CHROMIUM_ARGS, log_in, screenshot_dir
from tests.browser.test_csp import RECORD_VIOLATIONS
from tests.market.factories import seller_make
from tests.operators import operator_enrol, totp_code

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.django_db(transaction=True)]
MODEL = "deepseek/deepseek-chat"
DESKTOP = {"width": 1280, "height": 1000}


def _money(world, buyer, seller) -> tuple[int, int, int]:
    from billing.models import LedgerTransaction, TransactionKind
    from billing.selectors import earnings_summary, wallet_summary

    def read():
        return (
            wallet_summary(user=buyer.user)["balance_nusd"],
            earnings_summary(seller=seller)["available_nusd"],
            LedgerTransaction.objects.filter(kind=TransactionKind.REFUND).count(),
        )

    return world.db(read)


def test_a_buyer_disputes_a_request_and_an_operator_approves_it(world, monkeypatch):
    from playwright.sync_api import expect, sync_playwright

    # The money is read between browser steps, inside Playwright's event loop.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

    from billing.checks import ledger_violations
    from billing.models import Dispute

    buyer = world.buyer()
    seller = world.db(seller_make)
    world.listing(seller=seller, key="sim-dispute-good", percent=90)
    world.routable(MODEL, 1)
    answer = httpx.post(
        world.base + "/chat/completions",
        json={"model": MODEL, "messages": [{"role": "user", "content": "Hi"}]},
        headers={"Authorization": f"Bearer {buyer.key}"},
        timeout=30,
    )
    assert answer.status_code == 200
    request_id = answer.headers["x-df-market-request-id"]
    record = world.usage(request_id)
    assert record is not None and record.buyer_debit_nusd > 0
    before = _money(world, buyer, seller)
    staff = world.db(user_make, is_staff=True, is_superuser=True)
    secret = world.db(operator_enrol, staff)
    shots = screenshot_dir()

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            # The buyer disputes the request from its page. Every page of the journey is held
            # to the content security policy (tests/browser/test_csp.py's recorder).
            buyer_context = browser.new_context(viewport=DESKTOP)
            buyer_context.add_init_script(RECORD_VIOLATIONS)
            page = buyer_context.new_page()
            page.set_default_timeout(15_000)
            log_in(page, world.server.url, buyer.user.email)
            page.goto(f"{world.server.url}/billing/usage/{request_id}/")
            violations = {"usage page": page.evaluate("() => window.__cspViolations")}
            page.select_option("#id_reason", "broken_output")
            page.fill("#id_detail", "The answer was one word.")
            page.locator("#dispute-form").screenshot(path=str(shots / "dispute-form.png"))
            page.click("#dispute-submit")
            page.wait_for_url(f"**/billing/usage/{request_id}/")
            expect(page.locator("#dispute .dispute-status")).to_have_text(
                "open: awaiting an operator"
            )
            assert _money(world, buyer, seller) == before  # opening moves nothing

            # An operator signs in (password, then a TOTP code) and approves it from the queue.
            admin_context = browser.new_context(viewport=DESKTOP)
            admin_context.add_init_script(RECORD_VIOLATIONS)
            admin = admin_context.new_page()
            admin.set_default_timeout(15_000)
            admin.goto(f"{world.server.url}/admin/billing/dispute/")
            admin.wait_for_url(re.compile(r"/accounts/login/\?next="))
            admin.fill('input[name="login"]', staff.email)
            admin.fill('input[name="password"]', PASSWORD)
            admin.click('form button[type="submit"]')
            admin.wait_for_url(re.compile(r"/accounts/2fa/authenticate/"))
            admin.fill('input[name="code"]', totp_code(secret))
            admin.click('form button[type="submit"]')
            admin.wait_for_url(re.compile(r"/admin/billing/dispute/$"))
            admin.click(f"text={request_id}")
            admin.wait_for_url(re.compile(r"/admin/billing/dispute/\d+/decide/$"))
            expect(admin.locator("#dispute-claim")).to_contain_text("The answer was one word.")
            expect(admin.locator("#dispute-record")).to_contain_text(request_id)
            violations["decision page"] = admin.evaluate("() => window.__cspViolations")
            admin.fill("#id_note", "Refunded: the answer was cut off.")
            admin.screenshot(path=str(shots / "dispute-admin.png"), full_page=True)
            admin.click("#dispute-approve")
            admin.wait_for_url(re.compile(r"/admin/billing/dispute/$"))
            expect(admin.locator(".messagelist")).to_contain_text("approved")

            # The buyer sees the outcome; the money moved back by the request's amounts.
            page.reload()
            expect(page.locator("#dispute .dispute-status")).to_have_text("approved: refunded")
            expect(page.locator("#dispute-note")).to_have_text("Refunded: the answer was cut off.")
            page.screenshot(path=str(shots / "dispute.png"), full_page=True)
            page.click("text=Your disputes")
            expect(page.locator("#dispute-table")).to_contain_text("approved: refunded")
            violations["disputes page"] = page.evaluate("() => window.__cspViolations")
            assert violations == {"usage page": [], "decision page": [], "disputes page": []}
        finally:
            browser.close()

    balance, earnings, refunds = before
    assert _money(world, buyer, seller) == (
        balance + record.buyer_debit_nusd,
        earnings - record.seller_credit_nusd,
        refunds + 1,
    )
    dispute = world.db(lambda: Dispute.objects.get(usage__request_id=request_id))
    assert (dispute.status, dispute.decided_by_id) == ("approved", staff.pk)
    assert world.db(ledger_violations) == []
