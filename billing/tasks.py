"""Celery tasks of billing: the hold reaper, the ledger check (scheduled in dragonfly/celery.py)."""

from billing import services
from billing.checks import ledger_check_run
from dragonfly.celery import app


@app.task
def holds_reap_task() -> int:
    """Void holds older than DRAGONFLY_HOLD_TTL_SECONDS whose request never settled."""
    return services.holds_reap()


@app.task
def ledger_check_task() -> int:
    """Check the ledger from one snapshot and record the result for /metrics (hourly by beat)."""
    return len(ledger_check_run())
