"""Charts of the seller portal: probe uptime per 10 minutes, real time on the x axis."""

from datetime import timedelta

import pytest
from django.utils import timezone

from market import charts
from market.models import HealthSample
from market.selectors import UPTIME_BUCKET, probe_uptime_buckets
from tests.market.factories import listing_make

pytestmark = pytest.mark.django_db


def sample_at(listing, *, minutes_ago: float, ok: bool, source="probe"):
    sample = HealthSample.objects.create(listing=listing, source=source, ok=ok, ttft_ms=100)
    HealthSample.objects.filter(pk=sample.pk).update(
        at=timezone.now() - timedelta(minutes=minutes_ago)
    )


def test_uptime_is_the_share_of_successful_probes_per_bucket_and_ignores_live_traffic(seller):
    listing = listing_make(seller)
    other = listing_make(seller, name="other")
    bucket_s = UPTIME_BUCKET.total_seconds()
    now = timezone.now().timestamp()
    # two full buckets in the past, far from their edges
    old_start = (now - 3 * bucket_s) // bucket_s * bucket_s
    minutes_ago = (now - old_start - bucket_s / 2) / 60
    for ok in (True, True, True, False):
        sample_at(listing, minutes_ago=minutes_ago, ok=ok)
    sample_at(listing, minutes_ago=minutes_ago, ok=False, source="passive")  # not counted
    sample_at(listing, minutes_ago=minutes_ago - bucket_s / 60, ok=False)
    sample_at(listing, minutes_ago=25 * 60, ok=False)  # older than the window
    sample_at(other, minutes_ago=minutes_ago, ok=True)
    buckets = probe_uptime_buckets(listing_ids=[listing.pk])
    assert list(buckets) == [listing.pk]
    assert [share for _, share in buckets[listing.pk]] == [0.75, 0.0]
    first, second = (t for t, _ in buckets[listing.pk])
    assert first.timestamp() == old_start + bucket_s / 2
    assert second - first == UPTIME_BUCKET


def test_the_uptime_chart_draws_one_lane_per_listing_with_a_coloured_cell_per_bucket():
    now = timezone.now()
    bucket = timedelta(minutes=10)
    svg = charts.uptime_chart(
        {
            "A": [(now - timedelta(minutes=25), 1.0), (now - timedelta(minutes=15), 0.5)],
            "B": [(now - timedelta(minutes=15), 0.95)],
        },
        bucket=bucket,
        now=now,
    )
    cells = [part.split("</rect>")[0] for part in svg.split('<rect class="cell"')[1:]]
    assert [c.split('fill="')[1].split('"')[0] for c in cells] == ["#1f7a5c", "#c0392b", "#b7791f"]
    assert [c.split(": ")[1].split("<")[0] for c in cells] == ["100%", "50%", "95%"]
    assert ">A</text>" in svg and ">B</text>" in svg and ">now</text>" in svg
    assert f">{timezone.localtime(now - timedelta(minutes=30)):%H:%M}</text>" in svg
    empty = charts.uptime_chart({}, bucket=bucket)
    assert empty == '<p class="muted">No probes in the last 24 hours yet.</p>'


def test_fresh_samples_are_not_stretched_across_the_whole_width():
    now = timezone.now()
    svg = charts.ttft_chart(
        {"A": [(now - timedelta(seconds=2), 100.0), (now - timedelta(seconds=1), 200.0)]}, now=now
    )
    xs = [float(part.split('"')[0]) for part in svg.split('<circle cx="')[1:]]
    # a 30-minute axis: one second apart is a fraction of a pixel, both at the right edge
    assert len(xs) == 2
    assert xs[1] - xs[0] < 1
    assert xs[1] > charts.WIDTH - charts.PAD_R - 1


def test_the_portal_and_listing_pages_chart_ttft_and_uptime(client, seller):
    listing = listing_make(seller, name="Chart Capacity")
    sample_at(listing, minutes_ago=5, ok=True)
    client.force_login(seller)
    for url in ("/seller/", f"/seller/listings/{listing.pk}/"):
        body = client.get(url).content.decode()
        for card in ('id="ttft-chart"', 'id="uptime-chart"'):
            svg = body.split(card)[1].split("</svg>")[0]
            assert "<svg" in svg and ">Chart Capacity</text>" in svg, (url, card)
