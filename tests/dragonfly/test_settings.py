import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROBE = (
    "import django, json; django.setup(); from django.conf import settings as s; "
    "print(json.dumps({'engine': s.DATABASES['default']['ENGINE'], 'cache': s.CACHES['default']['BACKEND'],"
    " 'eager': s.CELERY_TASK_ALWAYS_EAGER, 'mail': s.EMAIL_BACKEND, 'debug': s.DEBUG,"
    " 'embedded': s.DRAGONFLY_EMBEDDED}))"
)


def _load(env: dict, tmp_path, probe: str = PROBE) -> subprocess.CompletedProcess:
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "DRAGONFLY_", "DEBUG"))
    }
    base.update(
        {"DJANGO_SETTINGS_MODULE": "dragonfly.settings", "DRAGONFLY_VAR_DIR": str(tmp_path)}
    )
    base.update(env)
    return subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        env=base,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_nothing_set_gives_the_embedded_default(tmp_path):
    result = _load({}, tmp_path)
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    assert loaded == {
        "engine": "django.db.backends.sqlite3",
        "cache": "django.core.cache.backends.locmem.LocMemCache",
        "eager": True,
        "mail": "mail.backends.ConsoleAndFileBackend",
        "debug": True,
        "embedded": True,
    }
    assert (tmp_path / "secret_key").exists()
    assert (tmp_path / "encryption_keys").read_text().startswith("k1:")


def test_urls_set_give_postgres_and_redis(tmp_path):
    result = _load(
        {
            "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/dragonfly",
            "REDIS_URL": "redis://127.0.0.1:6379/3",
            "SECRET_KEY": "x" * 50,
            "DRAGONFLY_ENCRYPTION_KEYS": "k1:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
        },
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    assert loaded["engine"] == "db_backends.postgresql"
    assert loaded["cache"] == "django.core.cache.backends.redis.RedisCache"
    assert loaded["eager"] is False
    assert loaded["debug"] is False
    assert loaded["embedded"] is False


def test_production_refuses_to_start_without_a_secret_key(tmp_path):
    result = _load({"DATABASE_URL": "postgres://postgres@127.0.0.1:5432/dragonfly"}, tmp_path)
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_production_refuses_to_start_without_encryption_keys(tmp_path):
    result = _load(
        {"DATABASE_URL": "postgres://postgres@127.0.0.1:5432/dragonfly", "SECRET_KEY": "s" * 50},
        tmp_path,
    )
    assert result.returncode != 0
    assert "DRAGONFLY_ENCRYPTION_KEYS must be set" in result.stderr


def test_a_malformed_boolean_is_refused(tmp_path):
    result = _load({"DEBUG": "maybe"}, tmp_path)
    assert result.returncode != 0
    assert "DEBUG must be a boolean" in result.stderr


PRODUCTION = {
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/dragonfly",
    "REDIS_URL": "redis://127.0.0.1:6379/3",
    "SECRET_KEY": "x" * 50,
    "DRAGONFLY_ENCRYPTION_KEYS": "k1:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
}
SETTINGS_PROBE = (
    "import django, json; django.setup(); from django.conf import settings as s; "
    "print(json.dumps({'broker': s.CELERY_BROKER_URL, 'redis': s.REDIS_URL, 'var': str(s.VAR_DIR),"
    " 'static': str(s.STATIC_ROOT), 'log': s.DRAGONFLY_LOG_FORMAT, 'base': s.DRAGONFLY_BASE_URL}))"
)


def test_blank_values_as_in_env_example_mean_the_default(tmp_path):
    # `cp .env.example docker/.env` leaves lines like `CELERY_BROKER_URL=`: unset, not "".
    blanks = {
        "CELERY_BROKER_URL": "",
        "STATIC_ROOT": "",
        "DRAGONFLY_LOG_FORMAT": "",
        "DRAGONFLY_BASE_URL": "",
        "EMAIL_HOST": "",
        "DRAGONFLY_SIGNUP_CREDIT_USD": "",
    }
    result = _load({**PRODUCTION, **blanks}, tmp_path, SETTINGS_PROBE)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "broker": "redis://127.0.0.1:6379/3",
        "redis": "redis://127.0.0.1:6379/3",
        "var": str(tmp_path),
        "static": str(ROOT / "staticfiles"),
        "log": "json",
        "base": "http://127.0.0.1:8000",
    }


def test_a_blank_redis_url_is_the_embedded_substitute(tmp_path):
    result = _load({"REDIS_URL": "", "CELERY_BROKER_URL": ""}, tmp_path)
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    assert loaded["cache"] == "django.core.cache.backends.locmem.LocMemCache"
    assert loaded["eager"] is True


def test_a_malformed_metrics_network_is_refused(tmp_path):
    result = _load({"DRAGONFLY_METRICS_ALLOWED_IPS": "127.0.0.1,10.0.0.0/33"}, tmp_path)
    assert result.returncode != 0
    assert "DRAGONFLY_METRICS_ALLOWED_IPS" in result.stderr


HTTPS_PROBE = (
    "import django, json; django.setup(); from django.conf import settings as s; "
    "print(json.dumps({'cookie': s.SESSION_COOKIE_SECURE, 'csrf': s.CSRF_COOKIE_SECURE,"
    " 'redirect': s.SECURE_SSL_REDIRECT, 'hsts': s.SECURE_HSTS_SECONDS,"
    " 'subdomains': s.SECURE_HSTS_INCLUDE_SUBDOMAINS, 'proxy': s.SECURE_PROXY_SSL_HEADER,"
    " 'static': s.STORAGES['staticfiles']['BACKEND'].rsplit('.', 1)[1]}))"
)
SERVER = {
    "DATABASE_URL": "postgres://u@127.0.0.1:5432/x",
    "SECRET_KEY": "k" * 50,
    "DRAGONFLY_ENCRYPTION_KEYS": "k1:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
}


POOL_PROBE = (
    "import django, json; django.setup(); from django.conf import settings as s; "
    "d = s.DATABASES['default']; print(json.dumps({'engine': d['ENGINE'],"
    " 'max_age': d['CONN_MAX_AGE'], 'pool': d['OPTIONS'].get('pool')}))"
)
PRODUCTION = {
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/dragonfly",
    "REDIS_URL": "redis://127.0.0.1:6379/3",
    "SECRET_KEY": "x" * 50,
    "DRAGONFLY_ENCRYPTION_KEYS": "k1:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
}


def test_a_https_base_url_makes_the_site_https_only(tmp_path):
    env = {
        **SERVER,
        "DRAGONFLY_BASE_URL": "https://dragonfly.example.com",
        "DRAGONFLY_BEHIND_PROXY": "1",
        "DRAGONFLY_STATIC_MANIFEST": "1",
    }
    result = _load(env, tmp_path, HTTPS_PROBE)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "cookie": True,
        "csrf": True,
        "redirect": True,
        "hsts": 31536000,
        "subdomains": True,
        "proxy": ["HTTP_X_FORWARDED_PROTO", "https"],
        "static": "ManifestStaticFilesStorage",
    }


def test_a_plain_http_base_url_keeps_cookies_usable_over_http(tmp_path):
    env = {**SERVER, "DRAGONFLY_BASE_URL": "http://127.0.0.1:8000"}
    result = _load(env, tmp_path, HTTPS_PROBE)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "cookie": False,
        "csrf": False,
        "redirect": False,
        "hsts": 0,
        "subdomains": False,
        "proxy": None,
        "static": "StaticFilesStorage",
    }


def test_postgres_connections_are_pooled_never_persistent(tmp_path):
    result = _load({**PRODUCTION, "DRAGONFLY_DB_POOL_SIZE": "7"}, tmp_path, POOL_PROBE)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "engine": "db_backends.postgresql",
        "max_age": 0,
        "pool": {"min_size": 1, "max_size": 7, "timeout": 10, "name": "django"},
    }


def test_a_pool_size_of_zero_means_a_connection_per_request(tmp_path):
    result = _load({**PRODUCTION, "DRAGONFLY_DB_POOL_SIZE": "0"}, tmp_path, POOL_PROBE)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "engine": "django.db.backends.postgresql",
        "max_age": 0,
        "pool": None,
    }


def test_a_negative_pool_size_is_refused(tmp_path):
    result = _load({**PRODUCTION, "DRAGONFLY_DB_POOL_SIZE": "-1"}, tmp_path, POOL_PROBE)
    assert result.returncode != 0
    assert "DRAGONFLY_DB_POOL_SIZE cannot be negative" in result.stderr
