"""Run the whole embedded marketplace: Redis substitute, simulated upstream, Celery and Daphne.

`make run` calls this after migrating and loading the demo data. Ctrl-C stops every process it started.
"""

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from urllib.parse import urlsplit

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from demo.identities import demo_banner


def _wait_for_http(url: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - loopback only
                if response.status == 200:
                    return True
        except OSError:
            time.sleep(0.2)
    return False


def providers_elsewhere(upstream_port: int) -> list[str]:
    """Base URLs of providers on this machine's loopback that the simulator started on
    `upstream_port` does not serve (the demo was seeded for another port)."""
    from market.models import Provider

    serving = f"127.0.0.1:{upstream_port}"
    urls = Provider.objects.filter(base_url__startswith="http://127.0.0.1:").values_list(
        "base_url", flat=True
    )
    return sorted({url for url in urls if urlsplit(url).netloc != serving})


class Command(BaseCommand):
    help = "Serve Dragonfly with every process it needs (the embedded default of `make run`)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument(
            "--upstream-port",
            type=int,
            default=urlsplit(settings.DRAGONFLY_SIMULATOR_URL).port or 9100,
            help="the simulated upstream (default: DRAGONFLY_SIMULATOR_URL's port, which "
            "seed_demo points the demo providers at)",
        )
        parser.add_argument(
            "--redis-port", type=int, default=6399, help="embedded Redis substitute"
        )
        parser.add_argument(
            "--no-celery", action="store_true", help="skip the Celery worker and beat"
        )

    def handle(self, *args, **options):
        env = os.environ.copy()
        if settings.REDIS_URL.startswith("fakeredis://"):
            # Every process we start must see the same Redis, so the substitute listens on loopback.
            from redis_clients.embedded import embedded_redis_start

            try:
                embedded_redis_start(port=options["redis_port"])
            except OSError as exc:
                raise CommandError(f"port {options['redis_port']} is taken: {exc}") from exc
            env["REDIS_URL"] = f"redis://127.0.0.1:{options['redis_port']}/0"
            self.stdout.write(f"Redis substitute (fakeredis) on 127.0.0.1:{options['redis_port']}")

        python = sys.executable
        commands = [
            (
                "upstream",
                [python, "manage.py", "simulate_upstream", "--port", str(options["upstream_port"])],
            ),
        ]
        if not options["no_celery"]:
            beat_file = str(settings.VAR_DIR / "celerybeat-schedule")
            commands.append(
                (
                    "celery",
                    [
                        python,
                        "-m",
                        "celery",
                        "-A",
                        "dragonfly",
                        "--quiet",
                        "worker",
                        "-B",
                        "-s",
                        beat_file,
                        "-P",
                        "threads",
                        "-c",
                        "4",
                        "-l",
                        "warning",
                    ],
                )
            )
        commands.append(
            (
                "web",
                [
                    python,
                    "-m",
                    "dragonfly.daphne",
                    "--access-log",
                    str(settings.VAR_DIR / "access.log"),
                    "-b",
                    options["host"],
                    "-p",
                    str(options["port"]),
                    "dragonfly.asgi:application",
                ],
            )
        )
        children: list[tuple[str, subprocess.Popen]] = []
        stopping = threading.Event()

        def stop(*_):
            stopping.set()

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        try:
            for name, argv in commands:
                children.append((name, subprocess.Popen(argv, env=env, start_new_session=True)))
            base = f"http://{options['host']}:{options['port']}"
            if not _wait_for_http(f"{base}/healthz", 60):
                raise CommandError("Daphne did not answer /healthz within 60 s")
            self.stdout.write(demo_banner(base_url=base))
            elsewhere = providers_elsewhere(options["upstream_port"])
            if elsewhere:
                upstream = f"http://127.0.0.1:{options['upstream_port']}"
                self.stderr.write(
                    f"Warning: providers point at {', '.join(elsewhere)}, but the simulated "
                    f"upstream runs on {upstream}: requests to them will fail. Run `manage.py "
                    f"seed_demo --upstream-url {upstream}` to point the demo at it."
                )
            while not stopping.is_set():
                for name, child in children:
                    if child.poll() is not None:
                        raise CommandError(f"{name} exited with status {child.returncode}")
                stopping.wait(0.5)
        finally:
            self._stop_all(children)

    def _stop_all(self, children):
        for _, child in children:
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for _, child in children:
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()
        self.stdout.write("Stopped.")
