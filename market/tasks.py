"""Celery tasks of the market: the health probe sweep, the verification of one listing, the
authenticity probes (the sweep, the confirmation of one listing after a failure, and the refunds
after a suspension), and the pruning of old route outcomes.

Task arguments are ids (and a time) only: keys are loaded and decrypted inside the worker.
"""

from datetime import datetime

from celery.signals import beat_init

from dragonfly.celery import app
from market import authenticity, authenticity_refunds, probes, route_outcomes

FIRST_SWEEP_DELAY_S = 5


@app.task(ignore_result=True)
def probe_all_task() -> int:
    """Beat: probe every active or pending listing (single-flight per listing and interval)."""
    return len(probes.probe_run())


@app.task(ignore_result=True)
def probe_listing_task(listing_id: int) -> int:
    """Verify a new, re-keyed or resumed listing now (pending -> active or rejected)."""
    return len(probes.probe_run(listing_ids=[int(listing_id)], verify=True))


@app.task(ignore_result=True)
def authenticity_probe_all_task() -> int:
    """Beat: probe the listings that are due (each about every
    DRAGONFLY_AUTHENTICITY_INTERVAL_SECONDS, jittered, single-flight)."""
    return len(authenticity.authenticity_run())


@app.task(ignore_result=True)
def authenticity_recheck_task(listing_id: int) -> int:
    """Ask one listing again after a failed authenticity probe (a second failure suspends it), and
    the trusted listings of its models with it (market/authenticity_record.py says why)."""
    return len(authenticity.authenticity_run(listing_ids=[int(listing_id)], recheck=True))


@app.task(ignore_result=True, autoretry_for=(Exception,), retry_backoff=True, max_retries=8)
def authenticity_refunds_task(listing_id: int, model_pk: int, since: str) -> int:
    """Finish the refunds of what a listing suspended by its authenticity probes served with the
    failed model, when doing them at the suspension stopped on an error
    (market/authenticity_record.py); it refunds only what is left."""
    return authenticity_refunds.refund_unproven(
        listing_id=int(listing_id), model_pk=int(model_pk), since=datetime.fromisoformat(since)
    )


@app.task(ignore_result=True)
def route_outcomes_prune_task() -> int:
    """Beat: delete why-traffic-moved counts past their retention (market/route_outcomes.py)."""
    return route_outcomes.route_outcomes_prune()


@beat_init.connect  # sent by standalone and embedded (`worker -B`) beat alike
def probe_on_beat_start(**_) -> None:
    """A beat process starts the first sweep within seconds rather than one interval later, so a
    fresh `make run` shows probed health at once. The short delay lets the processes started
    alongside it (the simulated upstream) listen first. A second beat process's extra sweep finds
    every listing already claimed (single-flight)."""
    probe_all_task.apply_async(countdown=FIRST_SWEEP_DELAY_S)
