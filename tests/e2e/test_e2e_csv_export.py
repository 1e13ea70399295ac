"""A CSV export of 200,000 usage records from a real Daphne process: the process's memory stays
bounded while it streams, the first bytes arrive before the last row is read, and the file is
exactly right (header, row count, sums)."""

from __future__ import annotations

import csv
import io
import os
import time
from decimal import Decimal

import httpx
import pytest
from django.test import Client

from billing.csv_export import USAGE
from tests.accounts.factories import user_make
from tests.billing.usage_bulk import usage_insert
from tests.e2e.conftest import Server, database_url
from tests.gateway import factories
from tests.market.factories import listing_make, seller_make

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
ROWS = 200_000
# What the process may grow by while it streams: a page of rows and the buffers of one chunk.
# Before the export streamed, the whole file was built first: +143 MiB (VmHWM) here, and the
# first bytes came after 13 s.
MAX_GROWTH_KIB = 24 * 1024


def _kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


def test_a_200k_row_export_streams_in_bounded_memory_and_is_exact(e2e_sim, django_db_blocker):
    with django_db_blocker.unblock():
        factories.market_make(e2e_sim.url)
        buyer = user_make()
        seller = seller_make()
        listing = listing_make(seller, key="sim-e2e-export")
        usage_insert(
            buyer=buyer, seller=seller, listing=listing, count=ROWS, first="2026-01-01T00:00:00Z"
        )
        client = Client()
        client.force_login(buyer)
        session = client.cookies["sessionid"].value
        dsn = database_url()
    server = Server({**os.environ, "DATABASE_URL": dsn, "DRAGONFLY_BASE_URL": "http://x.test"})
    try:
        pid = server.process.pid
        # Warm the process (imports, pools, templates) so what follows measures the export.
        page = httpx.get(server.url + "/billing/usage/", cookies={"sessionid": session})
        assert page.status_code == 200
        rss_before = _kib(pid, "VmRSS")
        peak_before = _kib(pid, "VmHWM")
        started = time.monotonic()
        body = bytearray()
        rss_samples = []
        with httpx.stream(
            "GET",
            server.url + "/billing/usage/?format=csv",
            cookies={"sessionid": session},
            timeout=120,
        ) as response:
            assert response.status_code == 200
            assert response.headers["content-type"] == "text/csv; charset=utf-8"
            chunks = response.iter_bytes()
            body += next(chunks)
            first_bytes_after = time.monotonic() - started
            # The oldest row of all, written after the first bytes arrived: only an export that
            # has not read its last rows yet can include it.
            with django_db_blocker.unblock():
                usage_insert(
                    buyer=buyer,
                    seller=seller,
                    listing=listing,
                    count=1,
                    first="2025-12-31T00:00:00Z",
                    prefix="late-",
                )
            for chunk in chunks:
                body += chunk
                if len(rss_samples) < len(body) // (1 << 20):  # one sample per MiB received
                    rss_samples.append(_kib(pid, "VmRSS"))
        elapsed = time.monotonic() - started
        peak_after = _kib(pid, "VmHWM")
    finally:
        server.stop()
    rows = list(csv.reader(io.StringIO(body.decode())))
    growth = max(peak_after - rss_before, max(rss_samples) - rss_before)
    print(
        f"\nexport of {ROWS + 1} rows, {len(body) / 1e6:.1f} MB in {elapsed:.1f} s,"
        f" first bytes after {first_bytes_after * 1000:.0f} ms; RSS before {rss_before} KiB,"
        f" max while streaming {max(rss_samples)} KiB, peak (VmHWM) {peak_before} -> {peak_after}"
        f" KiB: growth {growth} KiB"
    )
    assert rows[0] == USAGE.header
    assert len(rows) == 1 + ROWS + 1
    assert rows[1][1] == f"bulk-{ROWS}"  # newest first
    assert rows[-1][1] == "late-1"  # read after the first bytes had left
    cost = rows[0].index("cost_usd")
    expected_nusd = sum(1000 + n for n in range(1, ROWS + 1)) + 1001
    assert sum(Decimal(r[cost]) for r in rows[1:]) == Decimal(expected_nusd) / 10**9
    assert (
        sum(int(r[rows[0].index("input_units")]) for r in rows[1:])
        == sum(10 + n % 7 for n in range(1, ROWS + 1)) + 11
    )
    assert growth < MAX_GROWTH_KIB
