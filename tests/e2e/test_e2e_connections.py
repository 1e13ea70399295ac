"""PostgreSQL connections of one real Daphne process under load: 200 concurrent dashboard requests
of a signed-in buyer beside /v1 chat traffic, while pg_stat_activity is sampled for the server's
connections (tagged with an application_name of their own). The bound is the process's two pools:
Django's (DRAGONFLY_DB_POOL_SIZE) plus the gateway's async money pool
(DRAGONFLY_GATEWAY_DB_POOL_SIZE)."""

from __future__ import annotations

import asyncio
import os
import threading
import time

import httpx
import psycopg
import pytest
from django.db import connection
from django.test import Client

from tests.e2e.conftest import Server, database_url
from tests.gateway import factories
from tests.market.factories import listing_make, seller_make

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
MODEL = "deepseek/deepseek-chat"
APP_NAME = "df-connection-bound"
DJANGO_POOL = 10
GATEWAY_POOL = 10
BOUND = DJANGO_POOL + GATEWAY_POOL
DASHBOARD_REQUESTS = 200
CHAT_REQUESTS = 60


class ConnectionSampler:
    """Counts the server's connections in pg_stat_activity every 10 ms on its own connection."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def count(self, conn: psycopg.Connection) -> int:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND application_name = %s",
            [APP_NAME],
        ).fetchone()
        return int(row[0]) if row else 0

    def _run(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while not self._stop.is_set():
                self.samples.append(self.count(conn))
                time.sleep(0.01)

    def __enter__(self) -> ConnectionSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)


async def _load(base: str, session: str, key: str) -> tuple[list[int], list[int]]:
    limits = httpx.Limits(max_connections=DASHBOARD_REQUESTS + CHAT_REQUESTS)
    async with httpx.AsyncClient(
        base_url=base, limits=limits, timeout=60, cookies={"sessionid": session}
    ) as client:
        dashboard = [
            client.get(path)
            for path in ["/dashboard/", "/billing/usage/", "/billing/", "/dashboard/keys/"]
            * (DASHBOARD_REQUESTS // 4)
        ]
        chats = [
            client.post(
                "/v1/chat/completions",
                headers={"Authorization": f"Bearer {key}"},
                json={"model": MODEL, "messages": [{"role": "user", "content": f"hi {i}"}]},
            )
            for i in range(CHAT_REQUESTS)
        ]
        responses = await asyncio.gather(*dashboard, *chats)
    pages = [r.status_code for r in responses[:DASHBOARD_REQUESTS]]
    v1 = [r.status_code for r in responses[DASHBOARD_REQUESTS:]]
    return pages, v1


def test_the_connection_count_stays_under_the_two_pools_under_dashboard_and_v1_load(
    e2e_sim, django_db_blocker
):
    with django_db_blocker.unblock():
        factories.market_make(e2e_sim.url)
        buyer = factories.buyer_make(credit_usd="100")
        listing_make(seller_make(), key="sim-e2e-conns", concurrency_cap=100)
        client = Client()
        client.force_login(buyer.user)
        session = client.cookies["sessionid"].value
        dsn = database_url()
        settings_dict = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": dsn,
        "PGAPPNAME": APP_NAME,  # libpq tags every connection the server opens, both pools
        "DRAGONFLY_DB_POOL_SIZE": str(DJANGO_POOL),
        # 200 pages at once queue for Django's 10 connections: about 10 s on a slow 2-core
        # machine, past the default 10 s wait for one (a 500). The bound is what is tested.
        "DRAGONFLY_DB_POOL_TIMEOUT_SECONDS": "60",
        "DRAGONFLY_GATEWAY_DB_POOL_SIZE": str(GATEWAY_POOL),
        "DRAGONFLY_GATEWAY_ADMISSION": "64",
        "DRAGONFLY_ROUTING_REFRESH_SECONDS": "1",
        "DRAGONFLY_BASE_URL": "http://dragonfly.test",
    }
    server = Server(env)
    try:
        deadline = time.monotonic() + 10
        while (
            httpx.get(f"{server.url}/v1/models/{MODEL}", timeout=2).json().get("live_listings") != 1
        ):
            assert time.monotonic() < deadline, "the listing never became routable"
            time.sleep(0.1)
        sampler_dsn = (
            f"host={settings_dict.get('HOST') or '127.0.0.1'} port={settings_dict.get('PORT') or 5432}"
            f" dbname={settings_dict['NAME']} user={settings_dict.get('USER') or 'postgres'}"
            + (f" password={settings_dict['PASSWORD']}" if settings_dict.get("PASSWORD") else "")
        )
        with ConnectionSampler(sampler_dsn) as sampler:
            started = time.monotonic()
            pages, v1 = asyncio.run(_load(server.url, session, buyer.key))
            elapsed = time.monotonic() - started
            time.sleep(0.2)
    finally:
        server.stop()
    peak = max(sampler.samples)
    print(
        f"\n{DASHBOARD_REQUESTS} dashboard + {CHAT_REQUESTS} /v1 requests in {elapsed:.1f} s:"
        f" peak {peak} server connections (bound {BOUND}), {len(sampler.samples)} samples,"
        f" last {sampler.samples[-1]}"
    )
    assert pages == [200] * DASHBOARD_REQUESTS
    assert v1 == [200] * CHAT_REQUESTS
    assert peak <= BOUND
