"""A real Celery worker process logs through the project's logging: JSON lines, secrets redacted."""

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.db import connection

from market.tasks import probe_listing_task

ROOT = Path(__file__).resolve().parents[2]
SECRET = "sk-df-celeryleak0123456789abcdef"


def _database_url() -> str:
    s = connection.settings_dict
    password = f":{s['PASSWORD']}" if s.get("PASSWORD") else ""
    host = f"{s.get('HOST') or '127.0.0.1'}:{s.get('PORT') or 5432}"
    return f"postgres://{s.get('USER') or 'postgres'}{password}@{host}/{s['NAME']}"


@pytest.mark.django_db
def test_a_worker_logs_json_lines_with_secrets_redacted(settings, tmp_path):
    if settings.CELERY_TASK_ALWAYS_EAGER:
        pytest.skip("needs a Redis broker")
    queue = f"logging-{uuid.uuid4().hex[:8]}"
    log = tmp_path / "worker.log"
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "DRAGONFLY_LOG_FORMAT": "json",
        "DRAGONFLY_VAR_DIR": str(tmp_path),
        # Celery's warning about running as root is printed before any logging is set up (and
        # the image runs as a user): not a log line, so not part of what is checked here.
        "PYTHONWARNINGS": "ignore:You're running the worker with superuser privileges",
    }
    with open(log, "w") as out:
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "dragonfly",
                "worker",
                "--pool=solo",
                "-Q",
                queue,
                "-l",
                "INFO",
                "--without-heartbeat",
                "--without-gossip",
                "--without-mingle",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=out,
        )
        try:
            # A task whose failure message carries a buyer key, as Celery logs it (args and all).
            probe_listing_task.apply_async(args=[SECRET], queue=queue)
            deadline = time.monotonic() + 60
            while "raised unexpected" not in log.read_text() and time.monotonic() < deadline:
                assert worker.poll() is None, log.read_text()
                time.sleep(0.2)
        finally:
            worker.terminate()
            worker.wait(20)
    text = log.read_text()
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]  # every line JSON
    failure = next(entry for entry in lines if "raised unexpected" in entry["message"])
    assert failure["level"] == "ERROR"
    assert failure["logger"] == "celery.app.trace"
    assert "[redacted]" in failure["message"]
    assert "celeryleak" not in text
    assert any(
        entry["message"].startswith("Task market.tasks.probe_listing_task") for entry in lines
    )
