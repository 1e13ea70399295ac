"""The production topology, without Docker, from the files the compose deployment uses.

nginx (Debian's package) run by docker/nginx/edge.sh from docker/nginx/dragonfly.conf.template,
TLS from a certificate made here, a Daphne replica behind the name `web` and two of the `api` role
behind the name `api` (resolved by a stand-in for Docker's DNS), a Celery worker and beat, all
started by docker/entrypoint.sh and checked by the compose healthchecks
(dragonfly/container_health.py); PostgreSQL and Redis are the test's own, mail
goes to an SMTP server run here and the upstream is the simulator. Headless Chromium and the
official openai SDK drive it over https only: sign up, verify by the mailed link, accept the terms,
create a key, stream a chat answer through nginx, top up through a signed Stripe webhook.

`pytest -m deploy` runs it alone; its running time is printed (and is in docs/deploy.md).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from decimal import Decimal
from http.server import ThreadingHTTPServer
from pathlib import Path

import httpx
import openai
import pytest
import stripe

from simulator.testing import SimulatorThread
from tests.billing.test_stripe_checkout import _FakeStripe
from tests.browser.chromium import CHROMIUM, CHROMIUM_ARGS, screenshot_dir
from tests.deploy.topology import (
    ROOT,
    Mailbox,
    Names,
    Nginx,
    certificate_make,
    free_port,
    loopback_client,
    port_free_on,
    text_of,
)
from tests.e2e.conftest import database_url
from tests.gateway import factories
from tests.market.factories import listing_make, seller_make

pytestmark = [pytest.mark.deploy, pytest.mark.browser, pytest.mark.timeout(240)]

# The public name, as a real deployment has one (not loopback: production checks refuse that);
# the clients reach it at 127.0.0.1 without touching the machine's resolver.
HOST = "dragonfly.test"
# The services' containers, one port for all (8000 in compose): a web one, two api ones behind
# the one name `api`.
WEB_REPLICAS = ["127.0.0.2"]
API_REPLICAS = ["127.0.0.3", "127.0.0.4"]
MODEL = "deepseek/deepseek-chat"
EMAIL = "first-buyer@example.com"
PASSWORD = "a-long-enough-passphrase-16"
WEBHOOK_SECRET = "whsec_topology_test"
ENTRYPOINT = ["sh", str(ROOT / "docker" / "entrypoint.sh")]
# A slow seller: the first token after 100 ms, then 10 tokens/s for 20 tokens (about 2 s in all).
SLOW_UPSTREAM_KEY = "sim-topology?ttft_ms=100&tps=10&tokens=20"


def _market(sim_url: str) -> None:
    """The catalogue and one seller on the simulator.

    The one place that loads the catalogue: on main today the seed's catalogue pointed at the
    simulator; with a production catalogue command, load it here and point its providers at
    `sim_url`."""
    factories.market_make(sim_url)
    listing_make(seller_make(), key=SLOW_UPSTREAM_KEY, models=(MODEL,))


class Topology:
    def __init__(self, base: Path, sim_url: str, stripe_url: str) -> None:
        self.base = base
        self.https_port = free_port()
        self.http_port = free_port()
        self.url = f"https://{HOST}:{self.https_port}"
        self.web_port = port_free_on(WEB_REPLICAS + API_REPLICAS)
        self.mail = Mailbox()
        self.names = Names(base / "names", {"web": WEB_REPLICAS, "api": API_REPLICAS})
        self.cert = certificate_make(base / "tls", HOST)
        self.processes: dict[str, subprocess.Popen] = {}
        self.env = {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
            "DATABASE_URL": database_url(),
            "SECRET_KEY": secrets.token_urlsafe(64),
            "DRAGONFLY_BASE_URL": self.url,
            "ALLOWED_HOSTS": HOST,
            "DRAGONFLY_BEHIND_PROXY": "1",
            "DRAGONFLY_GATEWAY_PROCESSES": str(len(API_REPLICAS)),
            "DRAGONFLY_STATIC_MANIFEST": "1",
            "STATIC_ROOT": str(base / "static"),
            "DRAGONFLY_VAR_DIR": str(base / "var"),
            "EMAIL_HOST": "127.0.0.1",
            "EMAIL_PORT": str(self.mail.port),
            "EMAIL_USE_TLS": "0",
            "STRIPE_SECRET_KEY": "sk_test_topology",
            "STRIPE_PUBLISHABLE_KEY": "pk_test_topology",
            "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "STRIPE_API_BASE": stripe_url,
            "DRAGONFLY_ROUTING_REFRESH_SECONDS": "1",
            "DRAGONFLY_LOG_FORMAT": "json",
            "CELERY_CONCURRENCY": "1",
        }
        (base / "var").mkdir()

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            args, cwd=ROOT, env={**self.env, **env}, capture_output=True, text=True, timeout=120
        )

    def start(self, name: str, *args: str, **env: str) -> None:
        log = open(self.base / f"{name}.log", "w")  # noqa: SIM115
        self.processes[name] = subprocess.Popen(
            [*ENTRYPOINT, *args],
            cwd=ROOT,
            env={**self.env, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def healthy(self, check: str, timeout: float = 60, **env: str) -> None:
        """Wait until the compose healthcheck `check` passes, as Docker would poll it."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.run(sys.executable, "-m", "dragonfly.container_health", check, **env)
            if result.returncode == 0:
                return
            for name, process in self.processes.items():
                assert process.poll() is None, f"{name} exited; see {self.base / name}.log"
            assert time.monotonic() < deadline, f"{check} unhealthy: {result.stderr}"
            time.sleep(0.5)

    def up(self) -> None:
        # Configured as production must be: Django's and the project's deploy checks pass.
        checked = self.run(
            sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr
        # The build step (Dockerfile) and the one-shot migrate service, then the long-running ones.
        collected = self.run(sys.executable, "manage.py", "collectstatic", "--noinput", "-v0")
        assert collected.returncode == 0, collected.stderr
        migrated = self.run(*ENTRYPOINT, "migrate")
        assert migrated.returncode == 0, migrated.stdout + migrated.stderr
        for role, replicas in (("web", WEB_REPLICAS), ("api", API_REPLICAS)):
            for number, address in enumerate(replicas, 1):
                self.start(
                    f"{role}{number}",
                    role,
                    DRAGONFLY_WEB_BIND=address,
                    DRAGONFLY_WEB_PORT=str(self.web_port),
                )
        self.start("worker", "worker")
        self.start("beat", "beat")
        self.nginx = Nginx(
            self.base / "nginx",
            {
                "DRAGONFLY_HTTP_PORT": str(self.http_port),
                "DRAGONFLY_HTTPS_PORT": str(self.https_port),
                "DRAGONFLY_BASE_URL": self.url,
                "DRAGONFLY_TLS_DIR": str(self.base / "tls"),
                "DRAGONFLY_STATIC_ROOT": str(self.base / "static"),
                "DRAGONFLY_WEB_UPSTREAM": f"web:{self.web_port}",
                "DRAGONFLY_API_UPSTREAM": f"api:{self.web_port}",
            },
            names=self.names,
        )
        self.nginx.wait_serving()
        for role, replicas in (("web", WEB_REPLICAS), ("api", API_REPLICAS)):
            for address in replicas:
                url = f"http://{address}:{self.web_port}/readyz"
                self.healthy(role, DRAGONFLY_HEALTH_URL=url)
        self.healthy("worker")
        self.healthy("beat")

    def down(self) -> None:
        if hasattr(self, "nginx"):
            self.nginx.stop()
        for process in self.processes.values():
            process.terminate()
        for process in self.processes.values():
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
        self.mail.close()


@pytest.fixture
def topology(_clean_redis, transactional_db, django_db_blocker):
    started = time.monotonic()
    base = Path(tempfile.mkdtemp(prefix="dragonfly-topology-"))
    base.chmod(0o755)  # nginx's workers (nobody, when run as root) read the static files
    _FakeStripe.received = []
    fake_stripe = ThreadingHTTPServer(("127.0.0.1", 0), _FakeStripe)
    threading.Thread(target=fake_stripe.serve_forever, daemon=True).start()
    with SimulatorThread() as sim, django_db_blocker.unblock():
        _market(sim.url)
        world = Topology(base, sim.url, f"http://127.0.0.1:{fake_stripe.server_port}")
        try:
            world.up()
            print(f"\ntopology up in {time.monotonic() - started:.1f} s")
            yield world
        finally:
            world.down()
            fake_stripe.shutdown()
            print(f"topology test: {time.monotonic() - started:.1f} s in all")
    shutil.rmtree(base, ignore_errors=True)


def _no_csp_violations(page) -> list[str]:
    return page.evaluate("() => window.__cspViolations")


def test_a_buyer_pays_for_a_streamed_answer_over_https(topology):
    from playwright.sync_api import expect, sync_playwright

    world = topology
    # Clients trust the test's certificate and nothing else.
    edge = loopback_client(HOST, world.cert, timeout=10)

    # The edge: plain http only redirects to the public https origin; /metrics is refused there
    # (by nginx: the web process itself answers it on the internal network).
    redirect = httpx.get(f"http://127.0.0.1:{world.http_port}/accounts/login/?next=/x")
    assert redirect.status_code == 301
    assert redirect.headers["location"] == world.url + "/accounts/login/?next=/x"
    refused = edge.get(world.url + "/metrics")
    assert refused.status_code == 403
    assert "nginx" in refused.text
    for address in (WEB_REPLICAS[0], API_REPLICAS[0]):
        assert httpx.get(f"http://{address}:{world.web_port}/metrics").status_code == 200

    # Static files: hashed names are what pages link, cached for a year; other names revalidate.
    login = edge.get(world.url + "/accounts/login/")
    assert login.status_code == 200
    css = re.search(r'href="(/static/css/app\.[0-9a-f]{12}\.css)"', login.text)
    assert css, "the login page links a hashed stylesheet"
    hashed = edge.get(world.url + css.group(1))
    assert hashed.status_code == 200
    assert hashed.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert edge.get(world.url + "/static/css/app.css").headers["cache-control"] == "no-cache"
    # HTTPS as Django sees it through nginx: HSTS, a CSP, cookies for https only.
    assert login.headers["strict-transport-security"].startswith("max-age=31536000")
    assert "script-src 'self'" in login.headers["content-security-policy"]
    assert "; secure" in login.headers["set-cookie"].lower()

    shots = screenshot_dir()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[*CHROMIUM_ARGS, f"--host-resolver-rules=MAP {HOST} 127.0.0.1"],
        )
        try:
            # Chromium cannot be handed a CA here; the SDK and httpx above verify the certificate.
            context = browser.new_context(
                ignore_https_errors=True, viewport={"width": 1280, "height": 900}
            )
            context.add_init_script(
                "window.__cspViolations = [];"
                "document.addEventListener('securitypolicyviolation', e =>"
                " window.__cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));"
            )
            # Stripe's Checkout page is out of reach here: the browser lands on a stand-in.
            context.route(
                "https://checkout.stripe.com/**",
                lambda route: route.fulfill(status=200, body="<h1>Stripe Checkout</h1>"),
            )
            page = context.new_page()
            page.set_default_timeout(20_000)
            visited: dict[str, list[str]] = {}

            def balance() -> Decimal:
                """The dashboard's balance: the buyer's view of the wallet, read over https."""
                page.goto(world.url + "/dashboard/")
                return Decimal(page.locator("#balance").inner_text().strip().lstrip("$"))

            def visit(path: str) -> None:
                page.goto(world.url + path)
                visited[path] = _no_csp_violations(page)

            # Sign up over http: the edge sends the browser to https before anything is sent.
            page.goto(f"http://{HOST}:{world.http_port}/accounts/signup/")
            assert page.url == world.url + "/accounts/signup/"
            page.fill('input[name="email"]', EMAIL)
            page.fill('input[name="password1"]', PASSWORD)
            page.fill('input[name="password2"]', PASSWORD)
            page.click('form button[type="submit"]')
            expect(page.locator("h1")).to_have_text("Check your inbox")

            # The mailed link names the public https origin (the scheme came through nginx).
            body = text_of(world.mail.wait_for(EMAIL))
            link = re.search(r"https?://\S+/accounts/confirm-email/\S+/", body)
            assert link, body
            assert link.group(0).startswith(world.url + "/accounts/confirm-email/")
            page.goto(link.group(0))
            page.click('form button[type="submit"]')
            expect(page.locator("#balance")).to_have_text("$1.00")
            session = [c for c in context.cookies() if c["name"] == "sessionid"]
            assert session and session[0]["secure"] and session[0]["httpOnly"]

            visit("/dashboard/terms/")
            page.click('#terms-pending button:has-text("Accept version")')
            expect(page.locator("#terms-accepted")).to_be_visible()
            visit("/dashboard/keys/")
            page.fill('input[name="name"]', "topology")
            page.click('button:has-text("Create key")')
            secret = page.locator("#new-key-secret").inner_text().strip()
            visited["/dashboard/keys/ (new key)"] = _no_csp_violations(page)

            # The official SDK, through nginx over verified TLS: the first chunk arrives while
            # the upstream is still producing (about 2 s of tokens), so nothing buffered it.
            client = openai.OpenAI(
                base_url=world.url + "/v1",
                api_key=secret,
                max_retries=0,
                timeout=30,
                http_client=loopback_client(HOST, world.cert),
            )
            sent = time.monotonic()
            arrivals, text = [], []
            stream = client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "hello"}], stream=True
            )
            for chunk in stream:
                arrivals.append(time.monotonic() - sent)
                if chunk.choices and chunk.choices[0].delta.content:
                    text.append(chunk.choices[0].delta.content)
            first, last = arrivals[0], arrivals[-1]
            print(f"stream through nginx: first chunk {first:.2f} s, last {last:.2f} s")
            assert len(text) == 20
            assert last > 1.5
            assert first < last - 1.0

            # The playground streams from the page, under the Content-Security-Policy.
            visit("/dashboard/playground/")
            page.fill("#pg-key", secret)
            page.fill("#pg-message", "Hello through nginx")
            page.check("#pg-stream")
            page.click("#pg-send")
            expect(page.locator("#pg-outcome")).to_contain_text("HTTP 200", timeout=20_000)
            visited["/dashboard/playground/ (answered)"] = _no_csp_violations(page)

            # A top-up: Checkout is opened with https return URLs, Stripe's signed webhook pays.
            visit("/billing/")
            page.click('.topup-presets button:has-text("$10")')
            expect(page.locator("h1")).to_have_text("Stripe Checkout")
            form = _FakeStripe.received[-1]["form"]
            assert form["success_url"][0].startswith(world.url + "/billing/topup/success/")
            assert form["cancel_url"][0].startswith(world.url + "/billing/topup/cancel/")
            before = balance()
            # Stripe sends the buyer back to the success page, whose live socket (wss through
            # nginx) shows the credit when the webhook lands.
            page.goto(world.url + "/billing/topup/success/?session_id=cs_test_123")
            expect(page.locator("[data-live-socket]")).to_contain_text("Live", timeout=20_000)
            payload = json.dumps(
                {
                    "id": "evt_topology",
                    "object": "event",
                    "type": "checkout.session.completed",
                    "data": {
                        "object": {
                            "id": "cs_test_123",
                            "object": "checkout.session",
                            "amount_total": 1000,
                            "currency": "usd",
                            "payment_status": "paid",
                            "client_reference_id": form["client_reference_id"][0],
                            "metadata": {"topup_id": form["client_reference_id"][0]},
                        }
                    },
                }
            )
            delivered = edge.post(
                world.url + "/billing/stripe/webhook/",
                content=payload,
                headers={
                    "Content-Type": "application/json",
                    "Stripe-Signature": stripe.WebhookSignature.generate_signature_header(
                        payload, WEBHOOK_SECRET
                    ),
                },
            )
            assert delivered.status_code == 200, delivered.text
            expect(page.locator("#topup-credited")).to_contain_text("$10.00", timeout=20_000)
            visited["/billing/topup/success/ (live)"] = _no_csp_violations(page)
            assert balance() - before == Decimal("10.00")

            for path in ("/dashboard/", "/market/", "/billing/usage/", "/seller/", "/"):
                visit(path)
            page.goto(world.url + "/dashboard/")
            expect(page.locator("#balance")).to_contain_text("$10.")
            page.screenshot(path=str(shots / "topology_dashboard_https.png"), full_page=True)
            visited["/dashboard/ (after top-up)"] = _no_csp_violations(page)
        finally:
            browser.close()
    assert {path: v for path, v in visited.items() if v} == {}, "CSP violations"
    # /v1 went to the api replicas, spread over both behind the one name; pages to the web one.
    assert world.nginx.upstreams(v1=True) == {f"{a}:{world.web_port}" for a in API_REPLICAS}
    assert world.nginx.upstreams(v1=False) == {f"{a}:{world.web_port}" for a in WEB_REPLICAS}
    assert len(visited) >= 10
