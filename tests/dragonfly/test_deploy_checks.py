"""`manage.py check --deploy` (dragonfly/checks.py): a production configuration passes, and each
misconfiguration the issue names is refused with its own error. Real `manage.py` processes."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KEYS = "k1:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
PRODUCTION = {
    "DATABASE_URL": "postgres://dragonfly@127.0.0.1:5432/dragonfly",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "SECRET_KEY": "q7Xz-3vLw9pR2mK8nB4tY6hJ1cF5dG0sA_eU2iO9lP3kM7jN4bV8xC6zQ1wE5rT0",
    "DRAGONFLY_ENCRYPTION_KEYS": KEYS,
    "DRAGONFLY_BASE_URL": "https://dragonfly.example.com",
    "EMAIL_HOST": "smtp.example.com",
    "DEBUG": "0",
    "ALLOWED_HOSTS": "dragonfly.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://dragonfly.example.com",
    "SESSION_COOKIE_SECURE": "1",
    "DRAGONFLY_BEHIND_PROXY": "1",
    "STRIPE_SECRET_KEY": "sk_live_example",
    "STRIPE_WEBHOOK_SECRET": "whsec_example",
}


def _check(tmp_path, **changes) -> tuple[int, str, set[str]]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(
            ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "DRAGONFLY_", "DEBUG", "EMAIL_", "STRIPE_")
        )
    }
    env.update(PRODUCTION, DRAGONFLY_VAR_DIR=str(tmp_path))
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    return result.returncode, output, set(re.findall(r"\((\w+\.[EW]\d{3})\)", output))


def test_a_production_configuration_passes(tmp_path):
    code, output, ids = _check(tmp_path)
    assert code == 0, output
    assert ids == set(), output  # Django's HSTS/redirect/cookie warnings too: an https base URL


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"SECRET_KEY": "change-me"}, "dragonfly.E002"),
        ({"SECRET_KEY": "a-placeholder-change-me-" + "x" * 40}, "dragonfly.E002"),
        ({"SECRET_KEY": "test-secret-key-not-for-production"}, "dragonfly.E002"),
        ({"SECRET_KEY": "Zk3-short-but-random-9Qw"}, "dragonfly.E003"),
        ({"SECRET_KEY": "ab" * 40}, "dragonfly.E003"),
        ({"DRAGONFLY_BASE_URL": None}, "dragonfly.E005"),
        ({"DRAGONFLY_BASE_URL": "http://dragonfly.example.com"}, "dragonfly.E005"),
        ({"DRAGONFLY_BASE_URL": "https://127.0.0.1:8443"}, "dragonfly.E005"),
        ({"EMAIL_HOST": None}, "dragonfly.E006"),
        ({"DRAGONFLY_ENCRYPTION_KEYS": "k1:not-base64!"}, "dragonfly.E008"),
        ({"DEBUG": "1"}, "dragonfly.E010"),
        ({"DATABASE_URL": None, "SECRET_KEY": None, "DRAGONFLY_ENCRYPTION_KEYS": None}, "dragonfly.E001"),
    ],
)  # fmt: skip
def test_each_misconfiguration_is_refused(tmp_path, changes, error):
    code, output, ids = _check(tmp_path, **changes)
    assert code == 1, output
    assert error in ids, output
    assert "SystemCheckError" in output


def test_missing_encryption_keys_stop_the_process(tmp_path):
    code, output, _ = _check(tmp_path, DRAGONFLY_ENCRYPTION_KEYS=None)
    assert code == 1
    assert "DRAGONFLY_ENCRYPTION_KEYS must be set when DATABASE_URL is set" in output


def test_the_embedded_defaults_generated_secrets_are_refused(tmp_path):
    (tmp_path / "secret_key").write_text(PRODUCTION["SECRET_KEY"])
    (tmp_path / "encryption_keys").write_text(KEYS)
    code, output, ids = _check(tmp_path)
    assert code == 1
    assert {"dragonfly.E004", "dragonfly.E009"} <= ids, output


def test_missing_stripe_keys_only_warn(tmp_path):
    code, output, ids = _check(tmp_path, STRIPE_SECRET_KEY=None, STRIPE_WEBHOOK_SECRET=None)
    assert code == 0, output
    assert ids == {"dragonfly.W001"}
    assert "STRIPE_SECRET_KEY and STRIPE_WEBHOOK_SECRET not set: card top-ups are off" in output


def test_no_secret_appears_in_the_checks_output(tmp_path):
    _, output, _ = _check(tmp_path, DEBUG="1", DRAGONFLY_BASE_URL="http://x.example.com")
    assert PRODUCTION["SECRET_KEY"] not in output
    assert KEYS.split(":")[1] not in output


def test_the_web_entrypoint_runs_the_checks_before_it_migrates_or_serves(tmp_path):
    """docker/entrypoint.sh as the image runs it (`python` on the PATH, in the project): a placeholder
    secret stops it with the check's error, before migrate would reach the (absent) database."""
    env = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}/usr/bin{os.pathsep}/bin",
        "HOME": str(tmp_path),
        **PRODUCTION,
        "DATABASE_URL": "postgres://nobody@127.0.0.1:1/none",
        "SECRET_KEY": "change-me",
        "DRAGONFLY_VAR_DIR": str(tmp_path),
        "STATIC_ROOT": str(tmp_path / "static"),
    }
    result = subprocess.run(
        [str(ROOT / "docker" / "entrypoint.sh"), "web"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "(dragonfly.E002) SECRET_KEY is a placeholder." in result.stderr
    assert "Operations to perform" not in result.stdout  # migrate never ran
    assert not (tmp_path / "static").exists()  # nor collectstatic
