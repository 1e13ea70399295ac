"""The per-listing health state machine in Redis, fed by passive reports (the gateway's signal).

What counts as a failure, and what suspends, is gateway/upstream/statuses.py (its own tests are in
tests/gateway/test_upstream_statuses.py); here, what the health record does with it."""

import time

import pytest
from asgiref.sync import sync_to_async

from market import health, health_passive, health_record
from market.health import health_get
from market.health_passive import attempt_report_async
from market.health_record import health_report
from market.models import HealthSample, Listing, ListingStatus
from market.services import listing_pause
from redis_clients.clients import get_redis
from tests.market.factories import listing_make

pytestmark = pytest.mark.django_db


def report(listing_id, ok, status=None, ttft=None, tps=None, error=""):
    return health_report(
        listing_id=listing_id,
        ok=ok,
        status_code=status,
        ttft_ms=ttft,
        tokens_per_second=tps,
        error=error,
        passive=False,
    )


def test_a_listing_without_signals_is_unknown():
    assert health_get(9001).state == "unknown"


def test_successes_make_it_healthy_with_percentiles_and_uptime():
    for ttft, tps in [(100, 50), (200, 40), (300, 30), (400, 20), (500, 10)]:
        report(9001, True, 200, ttft, tps)
    view = health_get(9001)
    assert view.state == "healthy"
    assert view.ttft_p50_ms == 300.0
    assert view.ttft_p95_ms == 480.0
    assert view.tps_p50 == 30.0
    assert view.uptime == 1.0


def test_one_failure_degrades_but_does_not_cool_down():
    report(9001, True, 200, 100)
    outcome = report(9001, False, 502, error="upstream server error (HTTP 502)")
    view = health_get(9001)
    assert view.state == "degraded"
    assert view.last_error == "upstream server error (HTTP 502)"
    assert view.last_status_code == 502
    assert view.uptime == 0.5
    assert outcome.entered_cooling is False


def test_slow_ttft_degrades():
    report(9001, True, 200, health.SLOW_TTFT_MS + 1)
    assert health_get(9001).state == "degraded"


def test_three_failures_in_the_window_cool_it_down_and_a_success_after_the_cooldown_heals(
    monkeypatch,
):
    monkeypatch.setattr(health_record, "COOLDOWN_S", 0.3)
    report(9001, False, 500)
    report(9001, False, 500)
    assert health_get(9001).state == "degraded"
    third = report(9001, False, 503)
    assert third.entered_cooling is True
    assert health_get(9001).state == "cooling_down"
    # a success during the cool-down does not end it
    report(9001, True, 200, 100)
    assert health_get(9001).state == "cooling_down"
    time.sleep(0.35)
    recovery = report(9001, True, 200, 100)
    assert recovery.recovered is True
    assert health_get(9001).state == "healthy"


def test_a_failed_recovery_attempt_cools_down_again(monkeypatch):
    monkeypatch.setattr(health_record, "COOLDOWN_S", 0.2)
    for _ in range(3):
        report(9001, False, 500)
    first_until = health_get(9001).cooling_until
    time.sleep(0.25)
    report(9001, False, 500)
    view = health_get(9001)
    assert view.state == "cooling_down"
    assert view.cooling_until > first_until


def test_failures_outside_the_window_do_not_add_up(monkeypatch):
    monkeypatch.setattr(health_record, "FAIL_WINDOW_S", 0.2)
    report(9001, False, 500)
    report(9001, False, 500)
    time.sleep(0.25)
    report(9001, False, 500)
    assert health_get(9001).state == "degraded"


def test_client_faults_do_not_count_against_the_listing():
    report(9001, True, 200, 100)
    for _ in range(5):
        report(9001, False, 400)
    view = health_get(9001)
    assert view.state == "healthy"
    assert view.uptime == 1.0


def test_a_rejected_key_marks_it_suspended_in_redis():
    outcome = report(9001, False, 401)
    assert outcome.key_rejected is True
    assert health_get(9001).state == "suspended"


def test_stored_errors_are_redacted_and_short():
    report(9001, False, 500, error="boom Bearer sk-live-abcdefghijkl " + "x" * 500)
    view = health_get(9001)
    assert "sk-live-abcdefghijkl" not in view.last_error
    assert len(view.last_error) == 200


async def passive(listing_id, ok, status=None, ttft=None, tps=None, error=""):
    """One passive report as the gateway makes it, waited for up to its database side."""
    await attempt_report_async(
        listing_id=listing_id,
        ok=ok,
        status_code=status,
        ttft_ms=ttft,
        tokens_per_second=tps,
        error=error,
    )
    await health_passive.background_drain()


def test_a_listing_fault_counts_against_it_and_a_buyer_fault_does_not():
    report(9001, True, 200, 100)
    report(9002, True, 200, 100)
    for _ in range(2):
        report(9001, False, 404)
        report(9002, False, 422)
    assert (health_get(9001).state, health_get(9001).uptime) == ("degraded", 1 / 3)
    assert (health_get(9002).state, health_get(9002).uptime) == ("healthy", 1.0)


@pytest.mark.django_db(transaction=True)
async def test_passive_401_suspends_the_listing_and_emails_the_seller_once(seller, mailoutbox):
    listing = await sync_to_async(listing_make)(seller)
    for _ in range(2):
        await passive(listing.pk, False, 401, error="upstream 401")
    await sync_to_async(listing.refresh_from_db)()
    assert listing.status == ListingStatus.SUSPENDED
    assert listing.status_reason == "The provider rejected the key (HTTP 401)."
    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == [seller.email]
    assert mailoutbox[0].subject == f"[Dragonfly] Your listing “{listing.name}” is suspended"
    assert "Reason: The provider rejected the key (HTTP 401)." in mailoutbox[0].body
    [(html, mimetype)] = mailoutbox[0].alternatives  # the product's HTML layout beside the text
    assert mimetype == "text/html"
    assert "The provider rejected the key (HTTP 401)." in html
    assert f"/seller/listings/{listing.pk}/" in html and "Open the listing" in html
    assert health_get(listing.pk).state == "suspended"
    failed = HealthSample.objects.filter(listing=listing, source="passive", ok=False)
    assert await sync_to_async(failed.count)() == 2


@pytest.mark.django_db(transaction=True)
async def test_passive_402_suspends_with_a_balance_reason(seller, mailoutbox):
    listing = await sync_to_async(listing_make)(seller)
    await passive(listing.pk, False, 402)
    await sync_to_async(listing.refresh_from_db)()
    assert listing.status == ListingStatus.SUSPENDED
    assert "no balance" in listing.status_reason
    assert len(mailoutbox) == 1


@pytest.mark.django_db(transaction=True)
async def test_a_paused_listing_is_never_resumed_or_suspended_by_reports(seller, mailoutbox):
    listing = await sync_to_async(listing_make)(seller)
    assert await sync_to_async(listing_pause)(listing=listing) is True
    await passive(listing.pk, False, 401)
    for _ in range(3):
        await passive(listing.pk, True, 200, ttft=50, tps=30)
    await sync_to_async(listing.refresh_from_db)()
    assert listing.status == ListingStatus.PAUSED
    assert listing.status_reason == "Paused by the seller."
    assert mailoutbox == []


@pytest.mark.django_db(transaction=True)
async def test_passive_successes_write_at_most_one_sample_a_minute(seller):
    listing = await sync_to_async(listing_make)(seller)
    for _ in range(5):
        await passive(listing.pk, True, 200, ttft=80, tps=40)
    assert await sync_to_async(HealthSample.objects.filter(listing=listing).count)() == 1
    assert health_get(listing.pk).ttft_p50_ms == 80.0


@pytest.mark.django_db(transaction=True)
async def test_a_passive_report_updates_redis_and_hands_the_database_to_a_thread(
    seller, mailoutbox
):
    listing = await sync_to_async(listing_make)(seller)
    await attempt_report_async(
        listing_id=listing.pk, ok=True, status_code=200, ttft_ms=120, tokens_per_second=25
    )
    await attempt_report_async(
        listing_id=listing.pk,
        ok=False,
        status_code=401,
        ttft_ms=None,
        tokens_per_second=None,
        error="rejected",
    )
    await health_passive.background_drain()
    status = await sync_to_async(
        lambda: Listing.objects.values_list("status", flat=True).get(pk=listing.pk)
    )()
    samples = await sync_to_async(lambda: HealthSample.objects.filter(listing=listing).count())()
    assert status == ListingStatus.SUSPENDED
    assert samples == 2
    assert len(mailoutbox) == 1
    assert health_get(listing.pk).state == "suspended"


def test_a_report_is_one_round_trip_when_the_state_does_not_flip():
    client = get_redis()
    before = client.info("commandstats").get("cmdstat_exec", {}).get("calls", 0)
    report(9001, True, 200, 100, 20)
    after = client.info("commandstats").get("cmdstat_exec", {}).get("calls", 0)
    assert after - before == 1


@pytest.mark.django_db(transaction=True)
async def test_a_batch_of_successes_writes_what_as_many_single_reports_would(seller):
    listing = await sync_to_async(listing_make)(seller)
    report(9002, False, 500, error="boom")  # one failure in the recent outcomes of both
    report(9003, False, 500, error="boom")
    samples = [(100, 50), (200, 40), (300, 30), (400, 20), (500, 10)]
    for ttft, tps in samples:
        report(9002, True, 200, ttft, tps)
    await health_passive.successes_report_async(
        listing_id=9003,
        count=len(samples),
        ttfts=[float(t) for t, _ in samples],
        tpss=[float(s) for _, s in samples],
    )
    single, batched = health_get(9002), health_get(9003)
    assert batched.uptime == single.uptime == 5 / 6
    assert (batched.ttft_p50_ms, batched.ttft_p95_ms) == (single.ttft_p50_ms, single.ttft_p95_ms)
    assert (batched.tps_p50, batched.tps_p95) == (single.tps_p50, single.tps_p95)
    assert get_redis().lrange("df:mh:9003:ttft", 0, 0) == ["500.0"]  # newest first, as singly
    assert batched.state == single.state == "degraded"

    # A batch samples the listing's history like single passive reports: once a minute.
    for _ in range(2):
        await health_passive.successes_report_async(
            listing_id=listing.pk, count=3, ttfts=[80.0], tpss=[30.0]
        )
    await health_passive.background_drain()
    kept = await sync_to_async(lambda: list(HealthSample.objects.filter(listing=listing)))()
    assert [(s.source, s.ok, s.ttft_ms) for s in kept] == [("passive", True, 80.0)]
