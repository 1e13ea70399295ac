"""The live pages in headless Chromium against the real server (Daphne, channels-redis): a request
made by the openai SDK appears on the buyer's open Usage page, and their Overview's balance moves,
without a reload, while another buyer's open page receives nothing; a pending listing flips on its
open page when its probe decides; the top-up page shows the credit when the signed webhook lands."""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from unittest.mock import patch

import httpx
import pytest
import stripe
from django.db import connections
from playwright.sync_api import expect, sync_playwright

from billing.money import format_usd
from market.models import ListingStatus
from tests.browser.chromium import CHROMIUM, CHROMIUM_ARGS, log_in, screenshot_dir
from tests.e2e.conftest import Server, database_url

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WEBHOOK_SECRET = "whsec_test_live_pages"
LIVE = 15_000  # ms: a few of the pages' read intervals, generous for a loaded machine
# ms: the longest wait between a closed page's reconnect attempts (static/js/live.js; 1 s doubling
# to 30 s, jittered). A page whose server was down for a while may be anywhere in that wait.
RECONNECT_CEILING = 30_000


def _frames(page) -> list[dict]:
    """Every message the page's websockets receive, parsed, as they arrive."""
    frames: list[dict] = []

    def watch(socket) -> None:
        socket.on("framereceived", lambda payload: frames.append(json.loads(payload)))

    page.on("websocket", watch)
    return frames


def _off_loop(fn, *args, **kwargs):
    """Run `fn` (database work) in a thread: Playwright's sync API runs an event loop in this
    one, where Django refuses sync database calls. The thread closes the connection it opened, or
    the connection outlives the thread and the test database cannot be dropped at the end."""

    def run():
        try:
            return fn(*args, **kwargs)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(run).result()


def _live(page, timeout: int = LIVE) -> None:
    expect(page.locator("[data-live-socket]")).to_contain_text("Live", timeout=timeout)


def test_a_scripts_request_appears_on_its_buyers_open_pages_and_nowhere_else(world):
    buyer = world.buyer(credit_usd="1")
    other = world.buyer(credit_usd="1")
    world.listing()
    world.routable("deepseek/deepseek-chat", 1)
    base = world.server.url

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            mine = browser.new_context(viewport={"width": 1280, "height": 900})
            usage = mine.new_page()
            log_in(usage, base, buyer.user.email)
            usage_frames = _frames(usage)
            usage.goto(base + "/billing/usage/")
            overview = mine.new_page()
            overview.goto(base + "/dashboard/")
            expect(overview.locator("#balance")).to_have_text("$1.00")

            theirs = browser.new_context().new_page()
            log_in(theirs, base, other.user.email)
            their_frames = _frames(theirs)
            theirs.goto(base + "/billing/usage/")
            for page in (usage, overview, theirs):
                _live(page)

            raw = world.client(buyer.key).chat.completions.with_raw_response.create(
                model="deepseek/deepseek-chat",
                messages=[{"role": "user", "content": "Say something live."}],
            )
            request_id = raw.headers["x-df-market-request-id"]
            record = _off_loop(world.usage, request_id)
            assert record is not None

            row = usage.locator(f'tr[data-request-id="{request_id}"]')
            expect(row).to_be_visible(timeout=LIVE)
            cells = row.locator("td").all_inner_texts()
            assert cells[1] == request_id
            assert cells[3:6] == ["deepseek/deepseek-chat", "deepseek", "completed"]
            assert cells[6:9] == [
                str(record.input_units),
                str(record.output_units),
                format_usd(record.buyer_debit_nusd),
            ]
            assert cells[10] == str(record.duration_ms)
            balance = format_usd(1_000_000_000 - record.buyer_debit_nusd)
            expect(overview.locator("#balance")).to_have_text(balance, timeout=LIVE)
            expect(
                overview.locator(f'#live-requests tr[data-request-id="{request_id}"]')
            ).to_be_visible()
            usage.screenshot(path=str(screenshot_dir() / "live_usage.png"), full_page=True)
            assert any(f.get("type") == "requests" for f in usage_frames)

            time.sleep(3)  # more than one read interval after the buyer's page had it
            assert theirs.locator("tr[data-request-id]").count() == 0
            assert all(f["type"] == "wallet" for f in their_frames), their_frames
            assert request_id not in json.dumps(their_frames)
            assert {f["fields"]["balance"] for f in their_frames} == {"$1.00"}
        finally:
            browser.close()


def test_a_pending_listing_turns_active_on_its_open_page_when_its_probe_decides(world):
    listing = world.listing(status=ListingStatus.PENDING)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
            log_in(page, world.server.url, listing.seller.email)
            page.goto(world.server.url + f"/seller/listings/{listing.pk}/")
            _live(page)
            expect(page.locator("#live-status")).to_have_text("pending verification")

            from market import probes

            results = _off_loop(world.db, probes.probe_run, listing_ids=[listing.pk], verify=True)
            assert [result.ok for result in results] == [True]

            expect(page.locator("#live-status")).to_have_text("active", timeout=LIVE)
            expect(page.locator("h1 .badge").first).to_have_text("active")
            expect(page.locator("#traffic-note")).to_be_hidden()  # it spoke of the pending state
            page.screenshot(path=str(screenshot_dir() / "live_listing.png"), full_page=True)
        finally:
            browser.close()


@pytest.fixture(scope="module")
def stripe_server(django_db_setup, django_db_blocker):
    """A server that checks Stripe's webhook signature with a test secret."""
    with django_db_blocker.unblock():
        env = {
            **os.environ,
            "DATABASE_URL": database_url(),
            "STRIPE_SECRET_KEY": "sk_test_unused",
            "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        }
    server = Server(env)
    yield server
    server.stop()


def test_the_top_up_page_shows_the_credit_when_the_webhook_lands(world, stripe_server):
    from billing import services

    buyer = world.buyer(credit_usd="1")

    def pending():
        topup = services.topup_create(user=buyer.user, amount_nusd=5_000_000_000)
        services.topup_session_attach(topup=topup, session_id="cs_test_live_page")
        return topup

    topup = world.db(pending)
    base = stripe_server.url
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
            log_in(page, base, buyer.user.email)
            page.goto(base + "/billing/topup/success/?session_id=cs_test_live_page")
            _live(page)
            expect(page.locator("#topup-credited")).to_be_hidden()

            payload = json.dumps(
                {
                    "id": "evt_live_page",
                    "object": "event",
                    "type": "checkout.session.completed",
                    "data": {
                        "object": {
                            "id": "cs_test_live_page",
                            "object": "checkout.session",
                            "client_reference_id": str(topup.pk),
                            "amount_total": 500,
                            "currency": "usd",
                            "payment_status": "paid",
                            "metadata": {"topup_id": str(topup.pk)},
                        }
                    },
                }
            )
            signature = stripe.WebhookSignature.generate_signature_header(payload, WEBHOOK_SECRET)
            landed = httpx.post(
                base + "/billing/stripe/webhook/",
                content=payload,
                headers={"Content-Type": "application/json", "Stripe-Signature": signature},
                timeout=10,
            )
            assert landed.status_code == 200, landed.text

            expect(page.locator("#topup-credited")).to_contain_text("$5.00", timeout=LIVE)
            expect(page.locator("#topup-balance")).to_have_text("$6.00")
            page.screenshot(path=str(screenshot_dir() / "live_topup.png"), full_page=True)
        finally:
            browser.close()


def test_an_open_page_reconnects_after_its_server_restarts_and_shows_what_it_missed(world):
    buyer = world.buyer(credit_usd="1")
    world.listing()
    world.routable("deepseek/deepseek-chat", 1)
    with world.blocker.unblock():
        env = {**os.environ, "DATABASE_URL": database_url()}
    server = Server(env)
    port = server.port

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context().new_page()
            log_in(page, server.url, buyer.user.email)
            page.goto(server.url + "/billing/usage/")
            _live(page)

            server.stop()
            expect(page.locator("[data-live-socket]")).to_have_text("Reconnecting…", timeout=LIVE)
            # Settled while the page's server is down (through another server).
            raw = world.client(buyer.key).chat.completions.with_raw_response.create(
                model="deepseek/deepseek-chat",
                messages=[{"role": "user", "content": "Anyone there?"}],
            )
            request_id = raw.headers["x-df-market-request-id"]
            time.sleep(11)  # past the lag a fresh socket looks back (live/feeds.py, COMMIT_LAG)
            with patch("tests.e2e.conftest.free_port", return_value=port):
                server = Server(env)

            # Down for over 11 s, the page may have just begun a wait of up to 30 s.
            _live(page, timeout=RECONNECT_CEILING + LIVE)
            expect(page.locator(f'tr[data-request-id="{request_id}"]')).to_be_visible(timeout=LIVE)
        finally:
            browser.close()
            server.stop()
