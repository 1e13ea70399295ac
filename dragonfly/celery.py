"""The Celery app; periodic tasks of every app are scheduled here, in one visible place.

Task modules bind their tasks to this app (`@app.task`), not with `shared_task`: a web process
imports this module only with a task module (dragonfly/__init__.py says why), so `shared_task`
could resolve to Celery's default app there, which has no broker configured.
"""

import os

from celery import Celery
from celery.signals import setup_logging

from dragonfly.env import env_int

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dragonfly.settings")

app = Celery("dragonfly")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
app.conf.beat_schedule = {
    # billing: void holds whose request died before settling (DRAGONFLY_HOLD_TTL_SECONDS).
    "billing-holds-reap": {"task": "billing.tasks.holds_reap_task", "schedule": 60.0},
    # billing: check the ledger from one snapshot; /metrics reports the result (docs/money.md).
    "billing-ledger-check": {"task": "billing.tasks.ledger_check_task", "schedule": 3600.0},
    # gateway: settle what a crashed gateway process left, if no live one does (gateway/reaper.py).
    "gateway-reap-dead-processes": {
        "task": "gateway.tasks.reap_dead_processes_task",
        "schedule": 15.0,
    },
}

# market: probe every active/pending listing (single-flight per listing, see market/probes.py).
app.conf.beat_schedule["market-probe-all"] = {
    "task": "market.tasks.probe_all_task",
    "schedule": float(env_int("DRAGONFLY_PROBE_INTERVAL_SECONDS", 60)),  # as settings.py reads it
}

# market: authenticity probes; the sweep only picks the listings that are due (each about every
# DRAGONFLY_AUTHENTICITY_INTERVAL_SECONDS, jittered: market/authenticity.py), so it can run often.
app.conf.beat_schedule["market-authenticity-probe"] = {
    "task": "market.tasks.authenticity_probe_all_task",
    "schedule": 300.0,
}

# market: drop why-traffic-moved counts older than their retention (market/route_outcomes.py).
app.conf.beat_schedule["market-route-outcomes-prune"] = {
    "task": "market.tasks.route_outcomes_prune_task",
    "schedule": 3600.0,
}


@setup_logging.connect
def project_logging(**_) -> None:
    """With a receiver here Celery configures no logging of its own: workers and beat log
    through settings.LOGGING like the web processes (JSON lines, secrets redacted), Python's
    warnings (Celery's own at start) included."""
    import logging
    from logging.config import dictConfig

    from django.conf import settings

    dictConfig(settings.LOGGING)
    logging.captureWarnings(True)
