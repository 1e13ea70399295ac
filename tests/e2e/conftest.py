"""The real server: Daphne subprocesses on free ports, the simulator in a thread, committed data.

e2e tests are transactional (pytest.mark.django_db(transaction=True)): what a test creates is
committed, so the server processes see it, and the database is flushed after each test. Each test
starts by recreating the catalogue and waiting until the servers' routing tables show no listing
of any model.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import anthropic
import httpx
import openai
import pytest
from django.db import connection

from simulator.testing import SimulatorThread
from tests.gateway import factories
from tests.market.factories import listing_make, seller_make

ROOT = Path(__file__).resolve().parents[2]
# The servers' PostgreSQL application_name (libpq reads PGAPPNAME), so a fault test can cut their
# connections and not the test process's own.
SERVER_APPLICATION_NAME = "dragonfly-e2e-server"
pytestmark = pytest.mark.e2e


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def database_url() -> str:
    s = connection.settings_dict
    user = s.get("USER") or "postgres"
    password = f":{s['PASSWORD']}" if s.get("PASSWORD") else ""
    return f"postgres://{user}{password}@{s.get('HOST') or '127.0.0.1'}:{s.get('PORT') or 5432}/{s['NAME']}"


class Server:
    def __init__(self, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(ROOT / "var" / f"e2e-daphne-{self.port}.log", "w")  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dragonfly.daphne",  # as deployed: Daphne on uvloop
                "-b",
                "127.0.0.1",
                "-p",
                str(self.port),
                "dragonfly.asgi:application",
            ],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/v1/models", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"daphne did not start; see {self.log.name}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


@pytest.fixture(scope="session")
def e2e_sim():
    with SimulatorThread() as running:
        yield running


@pytest.fixture(scope="session")
def servers(django_db_setup, django_db_blocker, e2e_sim):
    """Two Daphne processes serving the same test database and Redis: one of the default role
    (`world.server`: every page and /v1) and one of the `api` role (/v1 only, under -OO), as the
    production edge sends /v1 (docs/deploy.md, "Roles")."""
    with django_db_blocker.unblock():
        env = {
            **os.environ,
            "DATABASE_URL": database_url(),
            "DRAGONFLY_ROUTING_REFRESH_SECONDS": "1",
            "DRAGONFLY_KEY_CACHE_SECONDS": "1",
            "DRAGONFLY_UPSTREAM_FIRST_TOKEN_TIMEOUT": "8",
            "DRAGONFLY_BASE_URL": "http://dragonfly.test",
            "PGAPPNAME": SERVER_APPLICATION_NAME,
            # They outlive the e2e tests: an hour's lease keeps their reapers off the gateway
            # tests' own leases (tests/gateway/test_reaper.py), which share the database.
            "DRAGONFLY_PROCESS_LEASE_SECONDS": "3600",
            # A buyer's balance lease (gateway/balance_leases.py) ends a second after their last
            # request, not five: `World.wallet(..., leases_ended=True)` waits for that.
            "DRAGONFLY_BALANCE_LEASE_SECONDS": "1",
        }
    started = [Server(env), Server({**env, "DRAGONFLY_ROLE": "api"})]
    yield started
    for server in started:
        server.stop()


class World:
    """Committed test data and clients for one test."""

    def __init__(self, servers, sim, blocker) -> None:
        self.server = servers[0]
        self.servers = servers
        self.sim = sim
        self.blocker = blocker
        self.base = self.server.url + "/v1"

    def db(self, fn, *args, **kwargs):
        with self.blocker.unblock():
            return fn(*args, **kwargs)

    def buyer(self, **kwargs) -> factories.Buyer:
        return self.db(factories.buyer_make, **kwargs)

    def listing(self, *, seller=None, **kwargs):
        def make():
            return listing_make(seller or seller_make(), **kwargs)

        return self.db(make)

    def client(self, key: str, **kwargs) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.base, api_key=key, max_retries=0, timeout=30, **kwargs)

    def anthropic(self, key: str) -> anthropic.Anthropic:
        return anthropic.Anthropic(base_url=self.server.url, api_key=key, max_retries=0, timeout=30)

    def routable(self, model: str, count: int, *, server=None) -> None:
        """Wait until the server's routing table shows `count` live listings for `model`."""
        url = (server or self.server).url + f"/v1/models/{model}"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if httpx.get(url, timeout=2).json().get("live_listings") == count:
                return
            time.sleep(0.1)
        raise AssertionError(f"{model} never showed {count} live listings")

    def unlisted(self, server) -> None:
        """Wait until the server's routing table shows no live listing of any model: the last
        test's listings (gone with the flush) must not serve this one's requests."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if not httpx.get(server.url + "/v1/models", timeout=2).json()["data"]:
                return
            time.sleep(0.1)
        raise AssertionError(f"{server.url} still lists models after the database was flushed")

    def catalogued(self, server) -> None:
        """Wait until the server's routing table holds the catalogue again: a table loaded between
        the last test's flush and this one's catalogue has no models at all, and a request would
        get "Unknown model" for a model the test expects to exist."""
        url = server.url + "/v1/models/deepseek/deepseek-chat"
        deadline = time.monotonic() + 10
        while httpx.get(url, timeout=2).status_code != 200:
            if time.monotonic() > deadline:
                raise AssertionError(f"{server.url} never loaded the catalogue")
            time.sleep(0.1)

    def wallet(self, buyer, *, leases_ended: bool = False) -> dict:
        """The buyer's wallet; with `leases_ended`, once nothing is held (up to 5 s: a balance
        lease is voided within its lifetime and a sweep of the buyer's last request)."""
        from billing.selectors import wallet_summary

        deadline = time.monotonic() + 5.0
        while True:
            wallet = self.db(wallet_summary, user=buyer.user)
            if not leases_ended or wallet["held_nusd"] == 0 or time.monotonic() > deadline:
                return wallet
            time.sleep(0.1)

    def usage(self, request_id: str, *, wait: float = 5.0):
        """The UsageRecord of a request (settlement runs just after the response ends)."""
        from billing.models import UsageRecord

        deadline = time.monotonic() + wait
        while True:
            record = self.db(lambda: UsageRecord.objects.filter(request_id=request_id).first())
            if record is not None or time.monotonic() > deadline:
                return record
            time.sleep(0.05)


@pytest.fixture
def world(servers, e2e_sim, django_db_blocker, transactional_db):
    e2e_sim.app.registry.reset()
    with django_db_blocker.unblock():
        factories.market_make(e2e_sim.url)
    world = World(servers, e2e_sim, django_db_blocker)
    for server in servers:
        world.unlisted(server)
        world.catalogued(server)
    yield world
    # Let the servers finish settling before pytest-django truncates the tables under them.
    from billing.models import Hold

    deadline = time.monotonic() + 5
    while Hold.objects.filter(status="active").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
