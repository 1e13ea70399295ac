"""What a web process never imports (docs/performance.md, "Where the gateway process's memory goes"):
Celery until a task is enqueued, pyOpenSSL and cffi (autobahn's native helpers) in Daphne's
process. A fresh interpreter, since the test process has loaded them all."""

import subprocess
import sys

SCRIPT = """
import os, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dragonfly.settings")
from dragonfly.daphne import _install_http_factory, _load_lean, _install_request
_load_lean()
_install_request()
_install_http_factory()
import daphne.cli, daphne.server
import django
django.setup()
import dragonfly.asgi
print(sorted(name for name in ("celery", "kombu", "OpenSSL", "cffi") if sys.modules.get(name)))
from market.tasks import probe_listing_task
print(probe_listing_task.app.main)
"""


def test_a_web_process_loads_neither_celery_nor_tls_nor_cffi_and_tasks_find_the_app():
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    loaded, app = done.stdout.strip().splitlines()[-2:]
    assert loaded == "[]"
    assert app == "dragonfly"  # not Celery's default app, which has no broker configured
