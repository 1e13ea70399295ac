"""Celery tasks of the gateway (scheduled in dragonfly/celery.py)."""

from dragonfly.celery import app
from gateway import reaper


@app.task
def reap_dead_processes_task() -> int:
    """Settle what dead gateway processes left, should no gateway process be alive to do it."""
    return reaper.reap_dead().processes
