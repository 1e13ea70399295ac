"""Celery tasks of billing: the hold reaper (scheduled in dragonfly/celery.py)."""

from celery import shared_task

from billing import services


@shared_task
def holds_reap_task() -> int:
    """Void holds older than DRAGONFLY_HOLD_TTL_SECONDS whose request never settled."""
    return services.holds_reap()
