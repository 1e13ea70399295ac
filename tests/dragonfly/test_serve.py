"""Start Dragonfly exactly as `make run` does (embedded default) and use it, twice."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _embedded_env(var_dir: Path) -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "DRAGONFLY_", "DEBUG"))
    }
    env["DRAGONFLY_VAR_DIR"] = str(var_dir)
    return env


def _manage(env, *args, timeout=300):
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.read().decode()


def _run_the_printed_curl(banner: str) -> dict:
    """Run the banner's curl line exactly as printed (through a shell, as a user pastes it)."""
    lines = banner[banner.index("    curl ") :].splitlines()
    command = "\n".join(lines[: next(i for i, line in enumerate(lines) if " -d " in line) + 1])
    result = subprocess.run(
        ["sh", "-c", command + " -s -i"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    head, _, body = result.stdout.replace("\r\n", "\n").partition("\n\n")
    status_line, *header_lines = head.splitlines()
    headers = dict(line.lower().split(": ", 1) for line in header_lines)
    return {**headers, "status": status_line.split()[1], "body": body}


def _serve_once(env, ports) -> str:
    web, upstream, redis_port = ports
    server = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "serve",
            "--port",
            str(web),
            "--upstream-port",
            str(upstream),
            "--redis-port",
            str(redis_port),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = []
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            line = server.stdout.readline()
            if not line:
                break
            output.append(line)
            if "Press Ctrl-C to stop." in line:
                break
        banner = "".join(output)
        assert "Press Ctrl-C to stop." in banner, banner
        assert _get(f"http://127.0.0.1:{web}/healthz") == (200, "ok")
        status, home = _get(f"http://127.0.0.1:{web}/")
        assert status == 200
        assert "Dragonfly" in home
        first, second = _run_the_printed_curl(banner), _run_the_printed_curl(banner)
        assert first["status"] == "200", first
        assert first["x-df-market-route"] == "seller"
        assert first["x-df-market-provider"] == "deepseek"
        assert json.loads(first["body"])["usage"]["completion_tokens"] > 0
        # Rate limits count in the Redis substitute every process shares (its Lua scripts work):
        # the second request is one fewer left in the same minute, or the first of the next one.
        remaining = int(first["x-ratelimit-remaining-requests"])
        if second["x-ratelimit-reset"] != first["x-ratelimit-reset"]:  # a new minute's window
            remaining = int(second["x-ratelimit-limit-requests"])
        assert int(second["x-ratelimit-remaining-requests"]) == remaining - 1
        _, metrics = _get(f"http://127.0.0.1:{web}/metrics")
        assert "dragonfly_gateway_redis_errors_total{" not in metrics
        assert 'dragonfly_gc_pause_seconds_count{generation="0"}' in metrics  # serving's collector
        time.sleep(3)  # a child that dies on start (Celery, the upstream) stops serve: it must not
        assert server.poll() is None, "".join(output) + server.stdout.read()
        return banner
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)
        # Every child is gone: the ports are free again.
        for port in ports:
            with socket.socket() as sock:
                assert sock.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still open"


@pytest.mark.timeout(600)
def test_make_run_serves_the_home_page_and_stops_cleanly_twice(tmp_path):
    env = _embedded_env(tmp_path)
    migrate = _manage(env, "migrate", "--noinput")
    assert migrate.returncode == 0, migrate.stderr
    ports = (_free_port(), _free_port(), _free_port())
    for _ in range(2):  # seed_demo is idempotent
        seed = _manage(env, "seed_demo", "--upstream-url", f"http://127.0.0.1:{ports[1]}")
        assert seed.returncode == 0, seed.stderr
    assert (tmp_path / "dragonfly.sqlite3").exists()

    banner = _serve_once(env, ports)
    assert f"http://127.0.0.1:{ports[0]}/dashboard/" in banner
    assert "buyer@demo.dragonfly.dev" in banner
    assert "Authorization: Bearer sk-df-demo" in banner

    _serve_once(env, ports)  # a second run works


@pytest.mark.django_db
def test_serve_names_the_providers_its_simulator_does_not_serve():
    from dragonfly.management.commands.serve import providers_elsewhere
    from market.demo import catalogue_seed
    from market.models import Provider

    catalogue_seed(upstream_url="http://127.0.0.1:9100")
    Provider.objects.create(slug="remote", name="Remote", base_url="https://api.example.com/v1")
    assert providers_elsewhere(9100) == []  # the demo was seeded for this port; remote ones pass
    assert providers_elsewhere(9200) == ["http://127.0.0.1:9100/v1"]
