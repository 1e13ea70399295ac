"""The compose healthchecks' failure paths (tests/deploy/test_topology.py sees them pass against
real Daphne, Celery worker and beat processes)."""

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.deploy.topology import free_port

ROOT = Path(__file__).resolve().parents[2]


def _check(name: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dragonfly.container_health", name],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_beat_is_healthy_while_it_keeps_writing_its_schedule(tmp_path):
    (tmp_path / "celerybeat-schedule").write_bytes(b"")
    assert _check("beat", DRAGONFLY_VAR_DIR=str(tmp_path)).returncode == 0


def test_beat_is_unhealthy_once_its_schedule_goes_stale(tmp_path):
    schedule = tmp_path / "celerybeat-schedule"
    schedule.write_bytes(b"")
    eleven_minutes_ago = time.time() - 660
    os.utime(schedule, (eleven_minutes_ago, eleven_minutes_ago))
    result = _check("beat", DRAGONFLY_VAR_DIR=str(tmp_path))
    assert result.returncode == 1
    assert "last written 66" in result.stderr


def test_beat_is_unhealthy_before_it_wrote_a_schedule(tmp_path):
    result = _check("beat", DRAGONFLY_VAR_DIR=str(tmp_path))
    assert result.returncode == 1
    assert "no schedule file" in result.stderr


def test_web_is_unhealthy_when_nothing_answers(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/readyz"
    result = _check("web", DRAGONFLY_HEALTH_URL=url)
    assert result.returncode == 1
    assert url in result.stderr


def test_an_unknown_service_is_a_usage_error():
    result = _check("nginx")
    assert result.returncode == 2
    assert "usage" in result.stderr


def test_a_blank_var_dir_means_the_image_default_as_everywhere(tmp_path):
    # docker/.env's `DRAGONFLY_VAR_DIR=` is blank: the check looks in /app/var, not in "."
    (tmp_path / "celerybeat-schedule").write_bytes(b"")
    result = subprocess.run(
        [sys.executable, "-m", "dragonfly.container_health", "beat"],
        cwd=tmp_path,
        env={**os.environ, "DRAGONFLY_VAR_DIR": "", "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "/app/var/celerybeat-schedule" in result.stderr
