"""What a web process never imports (docs/performance.md, "Where the gateway process's memory goes"):
Celery until a task is enqueued, pyOpenSSL and cffi (autobahn's native helpers) in Daphne's
process; and a process of the `api` role none of the pages', Channels' or websockets' machinery.
A fresh interpreter, since the test process has loaded them all."""

import os
import subprocess
import sys

import pytest

SCRIPT = """
import os, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dragonfly.settings")
from dragonfly.daphne import prepare, _role
api = _role() == "api"
prepare(api)
import daphne.cli, daphne.server
if api:
    import dragonfly.api_http
import django
django.setup()
import dragonfly.asgi
names = ("celery", "kombu", "OpenSSL", "cffi", "autobahn", "channels.routing", "rest_framework",
         "drf_spectacular", "django.contrib.admin", "django.contrib.sessions")
print(sorted(name for name in names if sys.modules.get(name)))
from market.tasks import probe_listing_task
print(probe_listing_task.app.main)
"""


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        ("all", "['autobahn', 'channels.routing', 'django.contrib.admin', "
         "'django.contrib.sessions', 'drf_spectacular', 'rest_framework']"),
        ("api", "[]"),
    ],
)  # fmt: skip
def test_a_web_process_loads_neither_celery_nor_tls_nor_cffi_and_tasks_find_the_app(role, expected):
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "DRAGONFLY_ROLE": role},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    loaded, app = done.stdout.strip().splitlines()[-2:]
    assert loaded == expected
    assert app == "dragonfly"  # not Celery's default app, which has no broker configured
