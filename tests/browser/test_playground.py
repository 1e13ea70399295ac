"""The dashboard's playground, driven in Chromium against the real server: a buyer pastes a key,
sends a message with a routing header, and sees the answer, the route diagnostics of the listing
that served it and a link to exactly what it was charged; a constraint no seller meets shows the
market's 503 as sent; a streamed answer arrives with its time to first token. Then the routing
headers added in issue 21 (each one sent, the strict one applied by the gateway), the Anthropic
Messages mode (plain and streamed), speech played in the page from a blob (the MP3's duration
decoded by the browser, under the site's CSP), and wrong inputs named beside their fields with
nothing sent. Screenshots: var/screenshots/playground*.png."""

import json
import re

import pytest

from tests.browser.chromium import CHROMIUM, CHROMIUM_ARGS, log_in, screenshot_dir

# The real-server fixtures (two Daphne processes, the simulator, committed data) of tests/e2e.

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.django_db(transaction=True)]
# The outcome reads "HTTP 200" once the headers arrive, "HTTP 200 in N ms" once the answer is whole.
ANSWERED = re.compile(r"HTTP 200 in \d+ ms")


def test_a_buyer_sends_a_request_from_the_playground_and_sees_its_route_and_charge(world):
    from playwright.sync_api import expect, sync_playwright

    from billing.models import UsageRecord
    from billing.money import format_usd

    listing = world.listing()
    world.routable("deepseek/deepseek-chat", 1)
    buyer = world.buyer()
    base = world.server.url
    screenshots = screenshot_dir()

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            page.set_default_timeout(15_000)
            log_in(page, base, buyer.user.email)
            page.goto(base + "/dashboard/playground/")
            expect(page.locator("#pg-model")).to_have_value("deepseek/deepseek-chat")

            page.fill("#pg-key", buyer.key)
            page.fill("#pg-message", "Hello from the playground!")
            page.click("#pg-routing summary")
            page.fill("#pg-provider-only", "deepseek")
            page.click("#pg-send")
            expect(page.locator("#pg-outcome")).to_contain_text(ANSWERED)
            assert page.locator("#pg-answer").inner_text().strip()
            expect(page.locator("#pg-usage")).to_contain_text("completion tokens")
            diagnostics = {
                row.get_attribute("data-header"): row.locator("td").nth(1).inner_text()
                for row in page.locator("#pg-diagnostics tbody tr").all()
            }
            page.screenshot(path=str(screenshots / "playground.png"), full_page=True)

            request_id = diagnostics["x-df-market-request-id"]
            assert diagnostics["x-df-market-route"] == "seller"
            assert diagnostics["x-df-market-provider"] == "deepseek"
            assert diagnostics["x-df-market-listing-id"] == str(listing.pk)
            page.click("#pg-charge-link")
            expect(page.locator("body")).to_contain_text(request_id)
            charge_page = page.locator("body").inner_text()

            page.go_back()
            if not page.locator("#pg-provider-only").is_visible():
                page.click("#pg-routing summary")
            page.fill("#pg-key", buyer.key)
            page.fill("#pg-provider-only", "minimax")  # no MiniMax seller serves this model
            page.click("#pg-send")
            expect(page.locator("#pg-outcome")).to_contain_text("HTTP 503")
            expect(page.locator("#pg-error-body")).to_contain_text("market_unavailable")
            assert page.locator("#pg-charge").is_hidden()
            page.screenshot(path=str(screenshots / "playground-503.png"), full_page=True)

            page.fill("#pg-provider-only", "")
            page.check("#pg-stream")
            page.click("#pg-send")
            expect(page.locator("#pg-outcome")).to_contain_text("first token after")
            assert page.locator("#pg-answer").inner_text().strip()
            expect(page.locator("#pg-usage")).to_contain_text("finish reason stop")
            page.screenshot(path=str(screenshots / "playground-stream.png"), full_page=True)
            streamed_id = (
                page.locator('#pg-diagnostics tr[data-header="x-df-market-request-id"] td')
                .nth(1)
                .inner_text()
            )
        finally:
            browser.close()

    # The database is read once the browser (and its event loop) is gone.
    record = world.usage(request_id)
    assert record is not None and record.buyer_id == buyer.user.pk
    streamed = world.usage(streamed_id)
    assert streamed is not None and streamed.streamed and streamed.output_units > 0
    assert world.db(UsageRecord.objects.filter(buyer=buyer.user).count) == 2  # the 503 cost nothing
    assert (
        f"You paid\t{format_usd(record.buyer_debit_nusd)}" in charge_page
    )  # the exact charge, as the page shows


def _browser(pw):
    return pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def _rows(page, table: str) -> dict[str, str]:
    return {
        row.get_attribute("data-header"): row.locator("td").nth(1).inner_text()
        for row in page.locator(f"#{table} tbody tr").all()
    }


def test_the_missing_routing_headers_are_sent_and_the_gateway_applies_them(world):
    """X-Min-Throughput-TPS and X-Provider-Order (soft: they rank) reach the gateway with the
    request, which is served; X-Hard-Min-Throughput-TPS (strict) leaves out the listing (slower,
    or not measured yet) and the market's 503 names that constraint."""
    from playwright.sync_api import expect, sync_playwright

    world.listing()
    world.routable("deepseek/deepseek-chat", 1)
    buyer = world.buyer()
    base = world.server.url
    screenshots = screenshot_dir()
    with sync_playwright() as pw:
        browser = _browser(pw)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1600})
            page.set_default_timeout(15_000)
            log_in(page, base, buyer.user.email)
            page.goto(base + "/dashboard/playground/")
            page.fill("#pg-key", buyer.key)
            page.click("#pg-routing summary")
            page.fill("#pg-min-tps", "12.5")
            page.fill("#pg-provider-order", "deepseek, minimax")
            with page.expect_request(lambda r: r.url.endswith("/v1/chat/completions")) as sent:
                page.click("#pg-send")
            expect(page.locator("#pg-outcome")).to_contain_text("HTTP 200")
            headers = sent.value.all_headers()
            assert headers["x-min-throughput-tps"] == "12.5"
            assert headers["x-provider-order"] == "deepseek, minimax"
            assert "x-hard-min-throughput-tps" not in headers
            shown = _rows(page, "pg-sent")
            assert shown["x-min-throughput-tps"] == "12.5"
            assert shown["x-provider-order"] == "deepseek, minimax"
            assert "authorization" not in shown and buyer.key not in page.content()
            assert _rows(page, "pg-diagnostics")["x-df-market-provider"] == "deepseek"
            page.screenshot(path=str(screenshots / "playground-headers.png"), full_page=True)

            page.fill("#pg-hard-tps", "1000000")  # no listing is that fast, or measured yet
            with page.expect_request(lambda r: r.url.endswith("/v1/chat/completions")) as sent:
                page.click("#pg-send")
            expect(page.locator("#pg-outcome")).to_contain_text("HTTP 503")
            assert sent.value.all_headers()["x-hard-min-throughput-tps"] == "1000000"
            error = json.loads(page.locator("#pg-error-body").inner_text())["error"]
            assert error["type"] == "market_unavailable"
            assert set(error["constraints"]) in ({"hard_min_throughput_tps"}, {"unmeasured"})
            page.screenshot(path=str(screenshots / "playground-hard-tps-503.png"), full_page=True)
        finally:
            browser.close()


def test_messages_mode_answers_in_anthropics_format_plain_and_streamed(world):
    from playwright.sync_api import expect, sync_playwright

    world.listing()
    world.routable("deepseek/deepseek-chat", 1)
    buyer = world.buyer()
    base = world.server.url
    with sync_playwright() as pw:
        browser = _browser(pw)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            page.set_default_timeout(15_000)
            log_in(page, base, buyer.user.email)
            page.goto(base + "/dashboard/playground/")
            page.check("input[name=mode][value=messages]")
            page.fill("#pg-key", buyer.key)
            page.fill("#pg-message", "Hello from the Messages mode!")
            page.fill("#pg-max-tokens", "40")
            with page.expect_request(lambda r: r.url.endswith("/v1/messages")) as sent:
                page.click("#pg-send")
            expect(page.locator("#pg-outcome")).to_contain_text(ANSWERED)
            headers = sent.value.all_headers()
            assert headers["x-api-key"] == buyer.key and "authorization" not in headers
            assert headers["anthropic-version"] == "2023-06-01"
            body = sent.value.post_data_json
            assert (body["max_tokens"], body["messages"][0]["role"]) == (40, "user")
            assert page.locator("#pg-answer").inner_text().strip()
            expect(page.locator("#pg-usage")).to_contain_text("output tokens")
            expect(page.locator("#pg-usage")).to_contain_text("stop reason end_turn")
            assert _rows(page, "pg-sent")["anthropic-version"] == "2023-06-01"
            assert "x-api-key" not in _rows(page, "pg-sent")
            page.screenshot(path=str(screenshot_dir() / "playground-messages.png"), full_page=True)
            plain_id = _rows(page, "pg-diagnostics")["x-df-market-request-id"]

            page.check("#pg-stream")
            page.click("#pg-send")
            expect(page.locator("#pg-outcome")).to_contain_text("first token after")
            assert page.locator("#pg-answer").inner_text().strip()
            expect(page.locator("#pg-usage")).to_contain_text("stop reason end_turn")
            streamed_id = _rows(page, "pg-diagnostics")["x-df-market-request-id"]
        finally:
            browser.close()
    plain, streamed = world.usage(plain_id), world.usage(streamed_id)
    assert plain.buyer_id == buyer.user.pk and not plain.streamed
    assert streamed.streamed and streamed.output_units > 0


def test_speech_mode_plays_the_mp3_in_the_page_with_the_chosen_voice(world):
    from playwright.sync_api import expect, sync_playwright

    world.listing(key="sim-e2e-pg-tts", provider="minimax", models=("minimax/speech-02-hd",))
    world.routable("minimax/speech-02-hd", 1)
    buyer = world.buyer()
    base = world.server.url
    with sync_playwright() as pw:
        browser = _browser(pw)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            page.set_default_timeout(15_000)
            log_in(page, base, buyer.user.email)
            page.goto(base + "/dashboard/playground/")
            page.check("input[name=mode][value=speech]")
            expect(page.locator("#pg-message")).to_be_hidden()
            page.fill("#pg-key", buyer.key)
            page.select_option("#pg-speech-model", "minimax/speech-02-hd")
            page.fill("#pg-speech-input", "Dragonflies see in every direction.")
            page.select_option("#pg-voice", "nova")
            page.fill("#pg-speed", "1.25")
            with page.expect_request(lambda r: r.url.endswith("/v1/audio/speech")) as sent:
                page.click("#pg-send")
            expect(page.locator("#pg-outcome")).to_contain_text("HTTP 200")
            assert sent.value.post_data_json == {
                "model": "minimax/speech-02-hd",
                "input": "Dragonflies see in every direction.",
                "voice": "nova",
                "response_format": "mp3",
                "speed": 1.25,
            }
            audio = page.locator("#pg-audio")
            expect(audio).to_be_visible()
            assert audio.get_attribute("src").startswith("blob:")
            # The page writes the duration once the browser has decoded the MP3's metadata.
            expect(page.locator("#pg-speech-info")).to_contain_text(re.compile(r"audio/mpeg, \d"))
            duration = page.evaluate("document.getElementById('pg-audio').duration")
            expect(page.locator("#pg-usage")).to_contain_text("cost $")
            page.screenshot(path=str(screenshot_dir() / "playground-speech.png"), full_page=True)
            request_id = _rows(page, "pg-diagnostics")["x-df-market-request-id"]
        finally:
            browser.close()
    assert duration > 0
    upstream = world.sim.app.stats()["keys"]["sim-e2e-pg-tts"]
    assert upstream["last_body"]["voice_setting"]["voice_id"] == "female-yujie"  # nova
    record = world.usage(request_id)
    assert (record.price_unit, record.input_units) == ("character", 35)


def test_wrong_inputs_are_named_beside_their_fields_and_nothing_is_sent(world):
    from playwright.sync_api import expect, sync_playwright

    buyer = world.buyer()
    base = world.server.url
    with sync_playwright() as pw:
        browser = _browser(pw)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1600})
            page.set_default_timeout(15_000)
            log_in(page, base, buyer.user.email)
            page.goto(base + "/dashboard/playground/")
            sent: list[str] = []
            page.on("request", lambda r: sent.append(r.url) if "/v1/" in r.url else None)

            page.check("input[name=mode][value=messages]")
            page.fill("#pg-key", "not-a-key")
            page.click("#pg-routing summary")
            page.fill("#pg-min-tps", "fast")
            page.fill("#pg-hard-tps", "-3")
            page.fill("#pg-provider-order", "deep seek!")
            page.fill("#pg-max-price", "0.1234567891")
            page.fill("#pg-session", "has spaces")
            page.click("#pg-send")
            expect(page.locator("#pg-status")).to_contain_text("Nothing was sent")
            expect(page.locator("#pg-key-error")).to_have_text("An access key starts with sk-df-.")
            expect(page.locator("#pg-max-tokens-error")).to_contain_text("needs max_tokens")
            expect(page.locator("#pg-min-tps-error")).to_have_text(
                "A number of tokens per second from 0 to 1,000,000."
            )
            expect(page.locator("#pg-hard-tps-error")).to_contain_text("tokens per second")
            expect(page.locator("#pg-provider-order-error")).to_contain_text("Provider slugs")
            expect(page.locator("#pg-max-price-error")).to_contain_text("at most 9 decimal")
            expect(page.locator("#pg-session-error")).to_contain_text("printable ASCII")
            assert page.locator("#pg-min-tps").get_attribute("aria-invalid") == "true"
            page.screenshot(path=str(screenshot_dir() / "playground-invalid.png"), full_page=True)

            page.check("input[name=mode][value=speech]")
            page.fill("#pg-speech-input", "")
            page.fill("#pg-speed", "9")
            page.click("#pg-send")
            expect(page.locator("#pg-speed-error")).to_have_text("A number from 0.25 to 4.")
            expect(page.locator("#pg-speech-input-error")).to_have_text("Type something to send.")
            expect(page.locator("#pg-max-tokens-error")).to_be_hidden()  # not this mode's field

            page.fill("#pg-key", buyer.key)
            for field in ("#pg-min-tps", "#pg-hard-tps", "#pg-provider-order", "#pg-max-price"):
                page.fill(field, "")
            page.fill("#pg-session", "s-1")
            page.fill("#pg-speech-input", "Hi")
            page.fill("#pg-speed", "")
            assert sent == []
            page.click("#pg-send")
            expect(page.locator("#pg-outcome")).to_contain_text("HTTP 503")  # no speech seller
            assert len(sent) == 1 and sent[0].endswith("/v1/audio/speech")
            expect(page.locator("#pg-speed-error")).to_be_hidden()
        finally:
            browser.close()
