"""The usage page's filters in a real browser against the real server: a buyer with two keys (one
real SDK request today, older history on both) filters by one key and a date range, sees exactly
those rows with the key column, keeps the filters on the next page and downloads a CSV that holds
exactly the filtered rows."""

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.browser.chromium import CHROMIUM, CHROMIUM_ARGS, log_in, screenshot_dir

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_buyer_filters_usage_by_key_and_dates_and_downloads_those_rows(world):
    from accounts import services as account_services
    from accounts.models import AccessKey
    from tests.billing.usage_bulk import usage_insert

    buyer = world.buyer(credit_usd="1")
    listing = world.listing()
    world.routable("deepseek/deepseek-chat", 1)
    raw = world.client(buyer.key).chat.completions.with_raw_response.create(
        model="deepseek/deepseek-chat", messages=[{"role": "user", "content": "Hello!"}]
    )
    assert raw.http_response.status_code == 200
    today_id = raw.headers["x-df-market-request-id"]
    assert world.usage(today_id) is not None

    def history() -> tuple[AccessKey, AccessKey]:
        first = AccessKey.objects.get(pk=buyer.key_id)
        other, _ = account_services.access_key_create(user=buyer.user, name="batch jobs")
        rows = {"buyer": buyer.user, "seller": listing.seller, "listing": listing}
        # 100 requests on the first key, hourly from Mar 1 00:00 (UTC); 30 on the other key on
        # Mar 2: from Mar 2 on, the first key's 76 (first-25 onwards) and today's request match.
        usage_insert(
            **rows,
            count=100,
            first="2026-03-01T00:00:00Z",
            step="1 hour",
            prefix="first-",
            key_id=first.pk,
        )
        usage_insert(
            **rows,
            count=30,
            first="2026-03-02T00:30:00Z",
            step="10 minutes",
            prefix="other-",
            key_id=other.pk,
        )
        return first, other

    first, other = world.db(history)
    today = datetime.now(UTC).date()
    expected = [today_id] + [f"first-{n}" for n in range(100, 24, -1)]
    shots = screenshot_dir()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            page = context.new_page()
            page.set_default_timeout(15_000)
            log_in(page, world.server.url, buyer.user.email)
            page.goto(world.server.url + "/billing/usage/")
            page.select_option("select[name=key]", str(first.pk))
            page.fill("input[name=start]", "2026-03-02")
            page.fill("input[name=end]", (today + timedelta(days=1)).isoformat())
            page.click('#usage-filter button:has-text("Filter")')
            expect(page.locator("#usage-table tbody tr")).to_have_count(50)
            shown = page.locator("#usage-table tbody tr td:nth-child(2)").all_inner_texts()
            assert shown == expected[:50]
            key_cells = set(page.locator("#usage-table tbody tr td:nth-child(3)").all_inner_texts())
            assert key_cells == {f"{first.name} {first.prefix}…"}
            page.screenshot(path=str(shots / "buyer_usage_filtered.png"), full_page=True)

            page.click("text=Older")  # the next page keeps the key and the dates
            rest = page.locator("#usage-table tbody tr td:nth-child(2)").all_inner_texts()
            assert rest == expected[50:]
            assert page.locator("select[name=key]").input_value() == str(first.pk)

            with page.expect_download() as download_info:
                page.click('#usage-filter button:has-text("Export CSV")')
            download = download_info.value
            assert download.suggested_filename == "dragonfly-usage.csv"
            with open(download.path(), encoding="utf-8") as handle:
                rows = list(csv.reader(io.StringIO(handle.read())))
        finally:
            browser.close()
    header = rows[0]
    assert [row[1] for row in rows[1:]] == expected
    assert {row[header.index("key_id")] for row in rows[1:]} == {str(first.pk)}
    assert other.pk != first.pk
