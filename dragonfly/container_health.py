"""Container healthchecks: `python -m dragonfly.container_health web|api|worker|beat` exits 0 when healthy.

docker/compose.yaml runs one per service (the topology test runs them against its own processes):
- web, api: this container's Daphne answers /readyz with 200 (it serves and reaches PostgreSQL);
- worker: this container's Celery worker answers a ping through the broker;
- beat: Celery beat wrote its schedule file lately (it does when it sends a task, at least every
  few minutes: billing-holds-reap is due every 60 s), so it is alive and reaching the broker.
A failure prints one line saying why, for `docker inspect`'s health log.
"""

from __future__ import annotations

import os
import socket
import sys
import time
import urllib.request
from pathlib import Path

WEB_URL = "http://127.0.0.1:8000/readyz"
# Beat syncs its schedule file every 3 minutes of sending tasks (Celery's sync_every).
BEAT_STALE_SECONDS = 600


def web(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:  # noqa: S310 - a fixed local URL
            return None if response.status == 200 else f"{url} answered {response.status}"
    except OSError as exc:
        return f"{url}: {exc}"


def worker(node: str) -> str | None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dragonfly.settings")
    from dragonfly.celery import app

    replies = app.control.ping(destination=[node], timeout=5)
    return None if any(node in reply for reply in replies) else f"{node} did not answer a ping"


def beat(schedule: Path, stale_seconds: float) -> str | None:
    # The shelve module may add a suffix (.db) to the name beat was given.
    files = [path for path in schedule.parent.glob(schedule.name + "*") if path.is_file()]
    if not files:
        return f"no schedule file at {schedule}"
    age = time.time() - max(path.stat().st_mtime for path in files)
    return None if age < stale_seconds else f"{schedule} last written {age:.0f} s ago"


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in {"web", "api", "worker", "beat"}:
        print("usage: python -m dragonfly.container_health web|api|worker|beat", file=sys.stderr)
        return 2
    if argv[0] in ("web", "api"):
        problem = web(os.environ.get("DRAGONFLY_HEALTH_URL") or WEB_URL)
    elif argv[0] == "worker":
        problem = worker(os.environ.get("DRAGONFLY_HEALTH_NODE", f"celery@{socket.gethostname()}"))
    else:
        # docker/entrypoint.sh gives beat this file.
        schedule = Path(os.environ.get("DRAGONFLY_VAR_DIR") or "/app/var") / "celerybeat-schedule"
        problem = beat(schedule, BEAT_STALE_SECONDS)
    if problem:
        print(problem, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
