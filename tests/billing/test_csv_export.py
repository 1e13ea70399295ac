"""CSV exports: the date range (parsed with bounds, bad input a 400 that says why), the keyset
pages (every row once, newest first, across page boundaries)."""

import csv
import io

import pytest
from asgiref.sync import async_to_sync
from django.test import Client

from billing import csv_export, selectors
from billing.export_range import ExportRange
from billing.models import UsageRecord
from tests.billing.usage_bulk import usage_insert

pytestmark = pytest.mark.django_db


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _rows(response) -> list[list[str]]:
    assert response.status_code == 200, response.content
    return list(csv.reader(io.StringIO(b"".join(response).decode())))


@pytest.fixture
def history(market):
    """Three days of requests, one an hour: 2026-03-01 00:00 to 2026-03-03 23:00 UTC."""
    buyer, seller, listing = market
    usage_insert(
        buyer=buyer,
        seller=seller,
        listing=listing,
        count=72,
        first="2026-03-01T00:00:00Z",
        step="1 hour",
    )
    return buyer, seller, listing


def test_a_date_range_exports_only_those_days_both_included(history):
    buyer, _, _ = history
    rows = _rows(_client(buyer).get("/billing/usage/?format=csv&start=2026-03-02&end=2026-03-03"))
    assert rows[0] == csv_export.USAGE.header
    assert len(rows) == 1 + 48
    assert rows[1][0] == "2026-03-03T23:00:00+00:00"
    assert rows[-1][0] == "2026-03-02T00:00:00+00:00"


def test_open_ends_export_everything_newest_first(history):
    buyer, _, _ = history
    rows = _rows(_client(buyer).get("/billing/usage/?format=csv&start=&end="))
    assert [r[1] for r in rows[1:]] == [f"bulk-{n}" for n in range(72, 0, -1)]


def test_the_sellers_sales_and_listing_exports_take_the_range(history):
    _, seller, listing = history
    client = _client(seller)
    sales = _rows(client.get("/billing/earnings/?format=csv&start=2026-03-03"))
    assert len(sales) == 1 + 24
    listings = _rows(client.get("/billing/earnings/?format=listings&end=2026-03-01"))
    assert listings[1][0] == str(listing.pk)
    assert listings[1][2] == "24"  # requests on 2026-03-01


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("start=yesterday", "The start date must be a date like 2026-01-31."),
        ("end=2026-13-01", "The end date must be a date like 2026-01-31."),
        ("start=2026-03-03&end=2026-03-01", "The start date must not be after the end date."),
        ("start=1999-12-31", "The start date must be between 2020-01-01 and"),
        ("end=2999-01-01", "The end date must be between 2020-01-01 and"),
    ],
)
def test_a_bad_date_range_is_a_400_that_says_why(history, query, message):
    buyer, seller, _ = history
    for client, path in [
        (_client(buyer), "/billing/usage/"),
        (_client(seller), "/billing/earnings/"),
    ]:
        response = client.get(f"{path}?format=csv&{query}")
        assert response.status_code == 400
        assert response["Content-Type"] == "text/plain; charset=utf-8"
        assert response.content.decode().startswith("Cannot export: " + message)
    assert UsageRecord.objects.count() == 72


def test_pages_cover_every_row_once_across_page_boundaries_and_equal_timestamps(market):
    buyer, seller, listing = market
    # 25 rows sharing one timestamp and 10 a second apart: pages of 7 split the equal ones.
    usage_insert(
        buyer=buyer,
        seller=seller,
        listing=listing,
        count=25,
        first="2026-03-01T00:00:00Z",
        step="0 seconds",
        prefix="same-",
    )
    usage_insert(
        buyer=buyer,
        seller=seller,
        listing=listing,
        count=10,
        first="2026-03-02T00:00:00Z",
        prefix="later-",
    )

    async def read() -> list[list[tuple]]:
        return [
            page
            async for page in csv_export.pages(
                csv_export.USAGE,
                selectors.usage_list(buyer=buyer),  # USAGE reads its key annotations
                date_range=ExportRange(),
                page_rows=7,
            )
        ]

    pages = async_to_sync(read)()
    ids = [row[1] for page in pages for row in page]
    assert [len(page) for page in pages] == [7, 7, 7, 7, 7]
    assert len(ids) == len(set(ids)) == 35
    assert ids[:10] == [f"later-{n}" for n in range(10, 0, -1)]
