"""Faults a deployment meets, done to a real gateway process (Daphne, PostgreSQL, Redis): its
database connections terminated under traffic, its own Redis hung then stopped then restarted,
the process SIGKILLed with streams in flight and a successor started. Every request is answered
200 or the documented 503, every answer is settled exactly once, the ledger checks, and no hold or
capacity slot outlives the fault. (Oversized bodies and headers sent to a real server:
tests/dragonfly/test_edge_limits.py.)"""

import os
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import httpx
import pytest
import redis as redis_lib
from django.core.management import call_command
from django.db import connection

from billing.models import Hold, UsageRecord
from gateway.models import GatewayProcess
from gateway.reaper import VOID_REASON
from redis_clients.clients import get_redis
from tests.e2e.conftest import SERVER_APPLICATION_NAME, Server, database_url, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
MODEL = "deepseek/deepseek-chat"


def _terminate_the_servers_connections() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name = %s",
            [SERVER_APPLICATION_NAME],
        )
        return cursor.fetchone()[0]


def test_terminating_the_gateways_database_connections_during_steady_traffic(world):
    buyer = world.buyer()
    world.listing(key="sim-e2e-faults?tokens=4&ttft_ms=20", concurrency_cap=16)
    world.routable(MODEL, 1)
    stop = threading.Event()

    with ThreadPoolExecutor(4) as pool:
        running = [
            pool.submit(_traffic, world.server, buyer.key, worker, stop) for worker in range(4)
        ]
        time.sleep(1.0)
        killed = []
        for _ in range(4):  # every connection of the servers, four times, 0.7 s apart
            killed.append(_terminate_the_servers_connections())
            time.sleep(0.7)
        time.sleep(1.0)
        stop.set()
        responses = [r for future in running for r in future.result()]

    statuses = [answer.status for answer in responses]
    print(  # the run's numbers, for the record
        f"\nfaults: {sum(killed)} connections terminated; statuses "
        f"{ {s: statuses.count(s) for s in sorted(set(statuses))} }"
    )
    assert sum(killed) >= 4  # the gateway's connections really were cut
    assert set(statuses) <= {200, 503}, sorted(set(statuses))
    for refused in (answer for answer in responses if answer.status == 503):
        assert refused.error_type == "market_unavailable"
    answered = [answer.request_id for answer in responses if answer.status == 200]
    assert len(answered) >= 0.8 * len(responses) and len(answered) >= 20
    _settled_once(buyer, answered)


def _server(world, **settings: str) -> Server:
    """A gateway process of this test's own (so it may be killed), on the shared database."""
    with world.blocker.unblock():
        env = {
            **os.environ,
            "DATABASE_URL": database_url(),
            "DRAGONFLY_ROUTING_REFRESH_SECONDS": "1",
            **settings,
        }
    return Server(env)


def _stream(server: Server, key: str, model: str, results: dict, stream: bool = True) -> None:
    """One request read to its end or until the server dies; records its id and content chunks."""
    body = {"model": model, "messages": [{"role": "user", "content": "A long story"}]}
    try:
        with (
            httpx.Client(timeout=60) as client,
            client.stream(
                "POST",
                server.url + "/v1/chat/completions",
                json={**body, "stream": stream, "max_tokens": 400},
                headers={"Authorization": f"Bearer {key}"},
            ) as response,
        ):
            request_id = response.headers["x-df-market-request-id"]
            results[request_id] = 0
            for line in response.iter_lines():
                if (
                    line.startswith("data: {")
                    and '"content":"' in line
                    and '"content":""' not in line
                ):
                    results[request_id] += 1
    except httpx.HTTPError:
        pass  # the server was killed under it


def test_a_killed_servers_streams_are_billed_as_delivered_and_its_holds_and_slots_come_back(world):
    lease = 4  # seconds (20 by default): the successor reaps it once this has passed
    server = _server(world, DRAGONFLY_PROCESS_LEASE_SECONDS=str(lease))
    buyer = world.buyer()
    world.listing(key="sim-e2e-crash?tps=20&tokens=400", concurrency_cap=10)
    world.listing(
        key="sim-e2e-crash-wait?ttft_ms=60000",
        models=("deepseek/deepseek-reasoner",),
        concurrency_cap=10,
    )
    world.routable(MODEL, 1, server=server)
    world.routable("deepseek/deepseek-reasoner", 1, server=server)
    streams: dict[str, int] = {}
    waiting: dict[str, int] = {}  # no id: the two never see their response's head
    threads = [
        *(
            threading.Thread(target=_stream, args=(server, buyer.key, MODEL, streams))
            for _ in range(8)
        ),
        *(
            threading.Thread(
                target=_stream,
                args=(server, buyer.key, "deepseek/deepseek-reasoner", waiting, stream),
            )
            for stream in (True, False)
        ),
    ]
    for thread in threads:
        thread.start()
    time.sleep(3.0)  # 8 streams delivering (about 50 tokens each), 2 requests still waiting
    with world.blocker.unblock():
        # The buyer's first request held alone; the others arrived a moment later and drew from
        # a balance lease (gateway/balance_leases.py): fewer holds than requests, a lease among them.
        active = list(Hold.objects.filter(status="active").values_list("request_id", flat=True))
        assert 2 <= len(active) < 10 and any("lease" in hold_id for hold_id in active), active
    server.process.kill()  # SIGKILL: no shutdown of any kind
    killed_at = time.monotonic()
    for thread in threads:
        thread.join(30)
    server.log.close()
    assert len(streams) == 8 and all(n > 0 for n in streams.values()), streams

    redis = get_redis()
    successor = _server(world, DRAGONFLY_PROCESS_LEASE_SECONDS=str(lease))
    try:
        with world.blocker.unblock():
            while time.monotonic() - killed_at < 60:
                if not Hold.objects.filter(status="active").exists() and not any(
                    redis.zcard(key) for key in redis.scan_iter(match="cap:inflight:*")
                ):
                    break
                time.sleep(0.2)
            released_after = time.monotonic() - killed_at
            print(
                f"\ncrash: holds and slots of the killed process released {released_after:.1f} s after SIGKILL"
            )
            assert not Hold.objects.filter(status="active").exists()
            assert released_after < 3 * lease + 5
            records = {r.request_id: r for r in UsageRecord.objects.filter(buyer=buyer.user)}
            assert set(records) == set(streams)  # every stream billed, the waiting two not
            for request_id, delivered in streams.items():
                record = records[request_id]
                assert record.outcome == "client_disconnected"
                # As of its last checkpoint (about once a second): never more than the buyer
                # got, and behind it by what 20 tokens/s deliver in a checkpoint's interval plus
                # the write (3 s allowed, for a loaded machine).
                assert 0 < record.output_units <= delivered, (record.output_units, delivered)
                assert delivered - record.output_units <= 3 * 20
                assert record.overrun_nusd == 0  # settled against its hold or its lease
            killed = next(iter(streams))[4:12]  # request ids start with their process's id
            # Its other holds (the waiting requests' own, the leases, settled against first) voided.
            waited = Hold.objects.filter(request_id__startswith="req_" + killed).exclude(
                request_id__in=list(streams)
            )
            assert {(h.status, h.void_reason) for h in waited} == {("voided", VOID_REASON)}
            assert any("lease" in h.request_id for h in waited)
            assert not GatewayProcess.objects.filter(id=killed).exists()
            call_command("ledger_check")

        # The listing's ten slots are free again: ten streams at once are all served.
        world.routable(MODEL, 1, server=successor)
        after: dict[str, int] = {}
        with ThreadPoolExecutor(10) as pool:
            for _ in range(10):
                pool.submit(_short, successor, buyer.key, after)
        assert sorted(after.values()) == [200] * 10, after
    finally:
        successor.stop()


def _short(server: Server, key: str, statuses: dict) -> None:
    response = httpx.post(
        server.url + "/v1/chat/completions",
        json={"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )
    statuses[response.headers["x-df-market-request-id"]] = response.status_code


class OwnRedis:
    """A redis-server of the test's own, to hang (SIGSTOP), stop and start again on its port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if redis_lib.Redis(port=self.port, socket_timeout=0.5).ping():
                    return
            except redis_lib.RedisError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
            self.process.wait(10)


def _readiness(server: Server) -> str:
    body = httpx.get(server.url + "/readyz", timeout=5).json()
    return "degraded" if body["degraded"] else "ok"


def test_a_gateway_whose_redis_hangs_then_dies_serves_on_and_bills_every_answer(world):
    own = OwnRedis()
    own.start()
    server = _server(world, REDIS_URL=own.url)
    try:
        buyer = world.buyer()
        world.listing(key="sim-e2e-redis-faults?tokens=4&ttft_ms=20", concurrency_cap=16)
        world.routable(MODEL, 1, server=server)
        stop = threading.Event()
        timeline: list[tuple[str, float, str]] = []  # (phase, seconds, /readyz)

        def phase(name: str, seconds: float) -> None:
            started = time.monotonic()
            readiness = set()
            while time.monotonic() - started < seconds:
                readiness.add(_readiness(server))
                time.sleep(0.25)
            timeline.append((name, seconds, "/".join(sorted(readiness))))

        with ThreadPoolExecutor(4) as pool:
            running = [
                pool.submit(_traffic, server, buyer.key, worker, stop) for worker in range(4)
            ]
            phase("redis up", 1.5)
            own.process.send_signal(signal.SIGSTOP)  # hung: accepts, never answers
            phase("redis hung", 4.0)
            own.process.send_signal(signal.SIGCONT)
            phase("redis back", 1.5)
            own.stop()  # dead: connections refused
            phase("redis stopped", 4.0)
            own.start()
            recovered_at = time.monotonic()
            while _readiness(server) != "ok" and time.monotonic() - recovered_at < 15:
                time.sleep(0.1)
            recovery = time.monotonic() - recovered_at
            phase("redis restarted", 1.5)
            stop.set()
            responses = [r for future in running for r in future.result()]
    finally:
        server.stop()
        own.stop()

    statuses = [answer.status for answer in responses]
    slowest = max(answer.seconds for answer in responses)
    print(
        f"\nredis faults: {timeline}; /readyz ok again {recovery:.2f} s after the restart; "
        f"statuses { {s: statuses.count(s) for s in sorted(set(statuses))} }; "
        f"slowest answer {slowest:.2f} s"
    )
    readiness = {name: seen for name, _, seen in timeline}
    assert readiness["redis up"] == readiness["redis restarted"] == "ok"
    assert readiness["redis hung"] == readiness["redis stopped"] == "degraded"  # 200, not 503
    assert set(statuses) == {200}, sorted(set(statuses))
    assert recovery < 5
    assert slowest < 2.0  # short Redis timeouts: a hung Redis stalls nobody for seconds
    answered = [answer.request_id for answer in responses]
    assert len(answered) >= 40
    with world.blocker.unblock():
        _settled_once(buyer, answered)


class Answer(NamedTuple):
    status: int
    seconds: float
    request_id: str
    error_type: str | None


def _traffic(server: Server, key: str, worker: int, stop: threading.Event) -> list[Answer]:
    """Requests one after another until `stop` (odd workers stream)."""
    answers = []
    with httpx.Client(timeout=30) as client:
        while not stop.is_set():
            started = time.monotonic()
            response = client.post(
                server.url + "/v1/chat/completions",
                json={
                    "model": MODEL,
                    "messages": [{"role": "user", "content": f"Hello {worker}"}],
                    "max_tokens": 8,
                    "stream": worker % 2 == 1,
                },
                headers={"Authorization": f"Bearer {key}"},
            )
            error = response.json()["error"]["type"] if response.status_code >= 400 else None
            answers.append(
                Answer(
                    response.status_code,
                    time.monotonic() - started,
                    response.headers["x-df-market-request-id"],
                    error,
                )
            )
    return answers


def _settled_once(buyer, answered: list[str]) -> None:
    """Every answered request settles exactly once (background retries land within 20 s), the
    buyer paid for nothing else, no hold is left, and the ledger checks."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        settled = UsageRecord.objects.filter(request_id__in=answered).count()
        if settled == len(answered) and not Hold.objects.filter(status="active").exists():
            break
        time.sleep(0.2)
    assert UsageRecord.objects.filter(request_id__in=answered).count() == len(answered)
    assert UsageRecord.objects.filter(buyer=buyer.user).count() == len(answered)
    assert not Hold.objects.filter(status="active").exists()
    call_command("ledger_check")
