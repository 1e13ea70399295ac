"""Celery tasks of the market: the periodic probe sweep and the verification of one listing.

Task arguments are listing ids only: keys are loaded and decrypted inside the worker.
"""

from celery import shared_task

from market import probes


@shared_task(ignore_result=True)
def probe_all_task() -> int:
    """Beat: probe every active or pending listing (single-flight per listing and interval)."""
    return len(probes.probe_run())


@shared_task(ignore_result=True)
def probe_listing_task(listing_id: int) -> int:
    """Verify a new, re-keyed or resumed listing now (pending -> active or rejected)."""
    return len(probes.probe_run(listing_ids=[int(listing_id)], verify=True))
