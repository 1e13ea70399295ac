"""Faults a deployment meets, done to a real gateway process (Daphne, PostgreSQL, Redis): every
request is answered 200 or the documented 503, and every answer is settled exactly once."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from django.core.management import call_command
from django.db import connection

from billing.models import Hold, UsageRecord

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
MODEL = "deepseek/deepseek-chat"


def _terminate_every_other_connection() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


def test_terminating_the_gateways_database_connections_during_steady_traffic(world):
    buyer = world.buyer()
    world.listing(key="sim-e2e-faults?tokens=4&ttft_ms=20", concurrency_cap=16)
    world.routable(MODEL, 1)
    stop = threading.Event()

    def traffic(worker: int) -> list[httpx.Response]:
        responses = []
        with httpx.Client(timeout=30) as client:
            while not stop.is_set():
                responses.append(
                    client.post(
                        world.base + "/chat/completions",
                        json={
                            "model": MODEL,
                            "messages": [{"role": "user", "content": f"Hello {worker}"}],
                            "max_tokens": 8,
                            "stream": worker % 2 == 1,
                        },
                        headers={"Authorization": f"Bearer {buyer.key}"},
                    )
                )
        return responses

    with ThreadPoolExecutor(4) as pool:
        running = [pool.submit(traffic, worker) for worker in range(4)]
        time.sleep(1.0)
        killed = []
        for _ in range(4):  # every connection but this one, four times, 0.7 s apart
            killed.append(_terminate_every_other_connection())
            time.sleep(0.7)
        time.sleep(1.0)
        stop.set()
        responses = [r for future in running for r in future.result()]

    statuses = [r.status_code for r in responses]
    print(  # the run's numbers, for the record
        f"\nfaults: {sum(killed)} connections terminated; statuses "
        f"{ {s: statuses.count(s) for s in sorted(set(statuses))} }"
    )
    assert sum(killed) >= 4  # the gateway's connections really were cut
    assert set(statuses) <= {200, 503}, sorted(set(statuses))
    for refused in (r for r in responses if r.status_code == 503):
        assert refused.json()["error"]["type"] == "market_unavailable"
    answered = [r.headers["x-df-market-request-id"] for r in responses if r.status_code == 200]
    assert len(answered) >= 0.8 * len(responses) and len(answered) >= 20
    deadline = time.monotonic() + 20  # settlements retried in the background land
    while time.monotonic() < deadline:
        settled = UsageRecord.objects.filter(request_id__in=answered).count()
        if settled == len(answered) and not Hold.objects.filter(status="active").exists():
            break
        time.sleep(0.2)
    assert UsageRecord.objects.filter(request_id__in=answered).count() == len(answered)
    assert UsageRecord.objects.filter(buyer=buyer.user).count() == len(answered)
    assert not Hold.objects.filter(status="active").exists()
    call_command("ledger_check")
