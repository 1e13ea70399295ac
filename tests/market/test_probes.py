"""Active probes against the simulated upstream: verification, suspension, cool-down, single-flight."""

import asyncio
import dataclasses
import threading
import uuid

import orjson
import pytest

from market import health, health_record, probes, services
from market.demo import listings_seed
from market.health import health_get
from market.models import HealthSample, Listing, ListingStatus
from redis_clients.clients import get_redis
from tests.market.factories import listing_make

pytestmark = pytest.mark.django_db(transaction=True)
RERANKER = "jina/jina-reranker-v2-base-multilingual"


def key_name():
    return f"sim-{uuid.uuid4().hex[:10]}"


def requests_seen(sim, name):
    stats = sim.app.registry.stats.get(name)
    return stats.requests if stats else 0


def unlock(listing):
    get_redis().delete(health.lock_key(listing.pk))


def test_a_probe_is_a_one_token_completion_and_records_a_sample(seller, sim):
    name = key_name()
    listing = listing_make(seller, key=f"{name}?ttft_ms=30")
    results = probes.probe_run()
    assert [(r.listing_id, r.ok, r.status_code) for r in results] == [(listing.pk, True, 200)]
    last = sim.app.registry.stats[name]
    assert last.last_path == "/chat/completions"
    assert b'"max_tokens": 1' in last.last_body or b'"max_tokens":1' in last.last_body
    sample = HealthSample.objects.get(listing=listing)
    assert (sample.source, sample.ok, sample.status_code) == ("probe", True, 200)
    assert sample.ttft_ms >= 30
    assert health_get(listing.pk).state == "healthy"


def test_a_speech_only_listing_is_probed_with_the_free_model_list(seller, sim):
    name = key_name()
    listing_make(seller, key=name, provider="minimax", models=("minimax/speech-02-hd",))
    results = probes.probe_run()
    assert [r.ok for r in results] == [True]
    assert sim.app.registry.stats[name].last_path == "/models"


def test_a_rerank_listing_is_probed_with_a_one_document_ranking(seller, sim):
    name = key_name()
    listing = listing_make(seller, key=f"{name}?ttft_ms=20", provider="jina", models=(RERANKER,))
    results = probes.probe_run()
    assert [(r.listing_id, r.ok, r.status_code) for r in results] == [(listing.pk, True, 200)]
    last = sim.app.registry.stats[name]
    assert last.last_path == "/rerank"
    assert orjson.loads(last.last_body) == {
        "model": "jina-reranker-v2-base-multilingual",
        "query": "ping",
        "documents": ["pong"],
        "top_n": 1,
        "return_documents": False,
    }
    assert health_get(listing.pk).state == "healthy"


@pytest.mark.parametrize("status", [401, 403])
def test_a_rerank_listing_whose_key_jina_refuses_is_suspended(seller, sim, status):
    listing = listing_make(
        seller, key=f"{key_name()}?reject={status}", provider="jina", models=(RERANKER,)
    )
    results = probes.probe_run()
    assert [(r.ok, r.status_code) for r in results] == [(False, status)]
    listing.refresh_from_db()
    assert listing.status == ListingStatus.SUSPENDED


def test_an_embeddings_only_listing_is_probed_with_the_free_model_list_not_chat(seller, sim):
    name = key_name()
    listing_make(seller, key=name, provider="minimax", models=("minimax/embo-01",))
    results = probes.probe_run()
    assert [(r.ok, r.status_code) for r in results] == [(True, 200)]
    stats = sim.app.registry.stats[name]
    assert (stats.requests, stats.last_path) == (1, "/models")


def test_a_new_listing_is_verified_by_a_probe_and_goes_live(seller, sim, task_calls):
    name = key_name()
    listing = listing_make(seller, key=name, status=ListingStatus.PENDING, verify=True)
    listing.refresh_from_db()
    assert listing.status == ListingStatus.ACTIVE
    assert task_calls == [("market.tasks.probe_listing_task", [listing.pk], {})]
    assert requests_seen(sim, name) == 1
    assert health_get(listing.pk).state == "healthy"


def test_a_broker_that_cannot_take_the_verification_leaves_it_to_the_sweep(
    seller, sim, monkeypatch
):
    """The listing is saved (no error for the seller) and stays pending; the next health sweep,
    which probes pending listings too, verifies it."""
    from market import tasks

    def refuse(*args, **kwargs):
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(tasks.probe_listing_task, "delay", refuse)
    name = key_name()
    listing = listing_make(seller, key=name, status=ListingStatus.PENDING, verify=True)
    assert Listing.objects.get(pk=listing.pk).status == ListingStatus.PENDING
    assert requests_seen(sim, name) == 0
    probes.probe_run()
    assert Listing.objects.get(pk=listing.pk).status == ListingStatus.ACTIVE


def test_a_new_listing_with_a_rejected_key_is_rejected_with_the_reason(seller, mailoutbox):
    listing = listing_make(
        seller, key=f"{key_name()}?reject=401", status=ListingStatus.PENDING, verify=True
    )
    listing.refresh_from_db()
    assert listing.status == ListingStatus.REJECTED
    assert listing.status_reason == "The provider rejected the key (HTTP 401)."
    assert mailoutbox == []


def test_a_transient_failure_leaves_a_new_listing_pending_for_a_retry(seller):
    listing = listing_make(
        seller, key=f"{key_name()}?status=503", status=ListingStatus.PENDING, verify=True
    )
    listing.refresh_from_db()
    assert listing.status == ListingStatus.PENDING
    assert listing.status_reason == (
        "Verification will be retried: upstream server error (HTTP 503)"
    )


def test_a_401_suspends_an_active_listing_within_one_probe_and_emails_once(seller, sim, mailoutbox):
    name = key_name()
    listing = listing_make(seller, key=f"{name}?reject=401")
    probes.probe_run()
    listing.refresh_from_db()
    assert listing.status == ListingStatus.SUSPENDED
    assert listing.status_reason == "The provider rejected the key (HTTP 401)."
    assert health_get(listing.pk).state == "suspended"
    unlock(listing)
    probes.probe_run()  # suspended listings are not probed again
    assert requests_seen(sim, name) == 1
    assert len(mailoutbox) == 1
    assert name not in mailoutbox[0].body


def test_a_402_suspends_with_the_balance_reason(seller):
    listing = listing_make(seller, key=f"{key_name()}?reject=402")
    probes.probe_run()
    listing.refresh_from_db()
    assert (listing.status, listing.status_reason) == (
        ListingStatus.SUSPENDED,
        "The provider reports no balance on this key (HTTP 402).",
    )


def test_an_in_body_key_rejection_suspends_like_a_401_as_the_gateway_counts_it(seller, sim):
    """MiniMax answers a rejected key with HTTP 200 and base_resp 1004: the probe reads the answer
    with the gateway's adapter, so it counts as the 401 it stands for."""
    name = key_name()
    listing = listing_make(seller, key=f"{name}?reject=401&base_resp=1")
    [result] = probes.probe_run()
    assert (result.ok, result.status_code, result.error) == (
        False,
        401,
        "the upstream rejected the key (HTTP 401)",
    )
    listing.refresh_from_db()
    assert (listing.status, listing.status_reason) == (
        ListingStatus.SUSPENDED,
        "The provider rejected the key (HTTP 401).",
    )


def test_an_unreachable_upstream_is_a_transient_failure_in_our_words(seller, sim):
    listing = listing_make(seller, key=key_name(), status=ListingStatus.PENDING)
    target = probes.probe_target(Listing.objects.get(pk=listing.pk))
    closed = dataclasses.replace(target, base_url="http://127.0.0.1:9")  # nothing listens
    [result] = asyncio.run(probes.probe_many([closed]))
    assert (result.ok, result.status_code, result.error) == (False, None, "could not connect")


def test_probes_never_touch_a_paused_listing(seller, sim, mailoutbox):
    name = key_name()
    listing = listing_make(seller, key=f"{name}?reject=401")
    services.listing_pause(listing=listing)
    probes.probe_run()
    probes.probe_run(listing_ids=[listing.pk], verify=True)
    listing.refresh_from_db()
    assert listing.status == ListingStatus.PAUSED
    assert requests_seen(sim, name) == 0
    assert mailoutbox == []


def test_a_pause_during_a_probe_wins(seller):
    listing = listing_make(seller, key=key_name(), status=ListingStatus.PENDING)
    target = probes.probe_target(Listing.objects.get(pk=listing.pk))
    services.listing_pause(listing=listing)
    probes.result_apply(target, probes.ProbeResult(listing.pk, True, 200, 12.0, ""))
    listing.refresh_from_db()
    assert listing.status == ListingStatus.PAUSED


def test_repeated_probe_failures_cool_down_and_a_recovery_probe_heals(seller, sim, monkeypatch):
    monkeypatch.setattr(health_record, "COOLDOWN_S", 0.2)
    name = key_name()
    listing = listing_make(seller, key=name)
    sim.app.registry.set_runtime(name, {"status": 503})
    for _ in range(health.FAIL_THRESHOLD):
        unlock(listing)
        probes.probe_run()
    assert health_get(listing.pk).state == "cooling_down"
    listing.refresh_from_db()
    assert listing.status == ListingStatus.ACTIVE  # cooling is health, not a status change
    sim.app.registry.set_runtime(name, {})
    import time

    time.sleep(0.25)
    unlock(listing)
    probes.probe_run()
    assert health_get(listing.pk).state == "healthy"
    assert HealthSample.objects.filter(listing=listing, source="probe").count() == 4


def test_two_concurrent_probe_runs_probe_each_listing_once(seller, other_seller, sim):
    names = [key_name() for _ in range(3)]
    listing_make(seller, key=f"{names[0]}?ttft_ms=100")
    listing_make(seller, key=f"{names[1]}?ttft_ms=100")
    listing_make(other_seller, key=f"{names[2]}?ttft_ms=100")
    barrier = threading.Barrier(2)
    counts = []

    def run():
        from django.db import connection

        barrier.wait()
        counts.append(len(probes.probe_run()))
        connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(counts)[-1] + sorted(counts)[0] == 3
    assert [requests_seen(sim, n) for n in names] == [1, 1, 1]
    assert HealthSample.objects.count() == 3


def test_the_demo_seed_is_idempotent_and_its_dead_key_is_suspended_by_one_probe(catalogue, sim):
    first = listings_seed(upstream_url=sim.url)
    second = listings_seed(upstream_url=sim.url)
    assert first.startswith("6 demo listings created, 6 in all")
    assert second.startswith("0 demo listings created, 6 in all")
    names = dict(Listing.objects.values_list("name", "status"))
    assert set(names.values()) == {ListingStatus.ACTIVE}
    assert Listing.objects.get(name="DeepSeek capacity B").trusted is True
    probes.probe_run()
    statuses = dict(Listing.objects.values_list("name", "status"))
    assert statuses == {
        "DeepSeek capacity A": "active",
        "DeepSeek capacity B": "active",
        "MiniMax capacity": "active",
        "Jina rerank capacity": "active",
        "MiniMax embeddings": "active",
        "DeepSeek capacity (expired key)": "suspended",
    }


def test_a_sweep_runs_at_most_the_bounded_number_of_probes_at_once(seller, sim, monkeypatch):
    names = [key_name() for _ in range(6)]
    for name in names:
        listing_make(seller, key=f"{name}?ttft_ms=150")
    in_flight, peak = 0, []
    real_probe_one = probes.probe_one

    async def counting(session, target):
        nonlocal in_flight
        in_flight += 1
        peak.append(in_flight)
        try:
            return await real_probe_one(session, target)
        finally:
            in_flight -= 1

    monkeypatch.setattr(probes, "probe_one", counting)
    monkeypatch.setattr(probes, "CONCURRENCY", 2)
    results = probes.probe_run()
    assert [r.ok for r in results] == [True] * 6
    assert max(peak) == 2
    assert [requests_seen(sim, n) for n in names] == [1] * 6


def test_a_verification_probe_takes_the_slot_so_the_next_sweep_skips_the_listing(seller, sim):
    name = key_name()
    listing = listing_make(seller, key=name, status=ListingStatus.PENDING, verify=True)
    listing.refresh_from_db()
    assert listing.status == ListingStatus.ACTIVE
    assert probes.probe_run() == []
    assert requests_seen(sim, name) == 1
    unlock(listing)
    assert [r.listing_id for r in probes.probe_run()] == [listing.pk]
    assert requests_seen(sim, name) == 2


def test_a_starting_beat_process_sweeps_at_once_and_a_second_one_probes_nothing(seller, sim):
    from celery.signals import beat_init

    name = key_name()
    listing = listing_make(seller, key=name)
    beat_init.send(sender=None)  # tasks are eager here: the sweep runs inside send()
    assert requests_seen(sim, name) == 1
    assert HealthSample.objects.filter(listing=listing, source="probe").count() == 1
    beat_init.send(sender=None)
    assert requests_seen(sim, name) == 1
