"""ledger_check reads one snapshot: no false violations under traffic, real ones still reported,
and the last result is on /metrics."""

import io
import re
import threading
import time

import pytest
from django.core.management import call_command
from django.db import connection

from billing import services
from billing.checks import ledger_violations
from billing.models import LedgerAccount, UsageRecord
from billing.tasks import ledger_check_task
from tests.accounts.factories import user_make
from tests.billing.factories import fund, settlement_make
from tests.market.factories import listing_row_make

pytestmark = pytest.mark.django_db(transaction=True)

BUYERS, MOVERS, CHECKS, ROUNDS = 24, 3, 20, 150


def _run_check(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("ledger_check", *args, stdout=out, stderr=err)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


def _gauges(client) -> dict[str, float]:
    body = client.get("/metrics", REMOTE_ADDR="127.0.0.1").content.decode()
    return {
        name: float(value)
        for name, value in re.findall(r"^(dragonfly_ledger_check_\w+) (\S+)$", body, re.M)
    }


def test_ledger_check_reports_no_violation_while_money_moves(capsys):
    buyers = [user_make(verified=None) for _ in range(BUYERS)]
    sellers = [user_make(verified=None) for _ in range(2)]
    listings = [listing_row_make(seller=seller) for seller in sellers]
    for buyer in buyers:
        fund(buyer, "50")
    stop = threading.Event()
    moves = [0] * MOVERS
    errors: list[BaseException] = []

    def move(n: int) -> None:
        # Holds, settlements and grants, each committed on its own: every commit changes a cached
        # balance (wallet, earnings) and adds the entries it caches.
        try:
            i = 0
            while not stop.is_set() and i < ROUNDS:
                buyer = buyers[(n + i) % BUYERS]
                seller, listing = sellers[i % 2], listings[i % 2]
                request_id = f"m{n}-{i}"
                services.hold_place(request_id=request_id, user_id=buyer.pk, amount_nusd=5_000_000)
                services.request_settle(
                    settlement=settlement_make(
                        buyer=buyer, seller=seller, listing=listing, request_id=request_id
                    )
                )
                if i % 5 == 0:
                    services.credit_grant(user=buyer, amount_nusd=1_000, reason="traffic")
                    moves[n] += 1
                moves[n] += 2
                i += 1
                time.sleep(0.01)  # traffic spread over all the checks
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=move, args=(n,)) for n in range(MOVERS)]
    for thread in threads:
        thread.start()
    reports: list[tuple[int, str]] = []  # (exit code, stderr) of each check
    try:
        while sum(moves) < 10 and not errors:  # traffic flows before the first check
            time.sleep(0.005)
        before, started = sum(moves), time.perf_counter()
        for _ in range(CHECKS):
            code, _, err = _run_check("--chunk", "2")
            reports.append((code, err))
        during = sum(moves) - before
        checked_at = time.perf_counter() - started
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    false_alarms = [err for code, err in reports if code != 0]
    with capsys.disabled():
        print(
            f"\n[ledger_check under traffic] {CHECKS} checks during {during} money moves: "
            f"{len(false_alarms)} reported violations ({checked_at:.1f}s)"
        )
    assert errors == []
    assert during >= 100
    assert false_alarms == []
    assert UsageRecord.objects.count() >= during // 3
    assert ledger_violations() == []


def test_ledger_check_reads_one_repeatable_read_snapshot(market):
    buyer, seller, listing = market
    services.hold_place(request_id="r1", user_id=buyer.pk, amount_nusd=10_000_000)
    services.request_settle(
        settlement=settlement_make(buyer=buyer, seller=seller, listing=listing, request_id="r1")
    )
    seen: list[tuple[str, str]] = []

    def progress(_: str) -> None:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT current_setting('transaction_isolation'), "
                "current_setting('transaction_read_only')"
            )
            seen.append(cursor.fetchone())

    assert ledger_violations(progress=progress, chunk=1) == []
    assert len(seen) == 4  # after the transactions, each of 2 user accounts, the usage record
    assert set(seen) == {("repeatable read", "on")}
    assert connection.in_atomic_block is False


def test_a_broken_ledger_is_still_reported_and_on_metrics(market, client):
    buyer, _, _ = market
    assert _gauges(client) == {}  # no check has run yet
    started = time.time()
    assert _run_check()[0] == 0
    gauges = _gauges(client)
    assert gauges["dragonfly_ledger_check_violations"] == 0
    assert started <= gauges["dragonfly_ledger_check_last_run_timestamp_seconds"] <= time.time()
    assert gauges["dragonfly_ledger_check_duration_seconds"] >= 0

    LedgerAccount.objects.filter(user=buyer, kind="wallet").update(balance_nusd=999)
    code, _, err = _run_check()
    assert code == 1
    wallet = LedgerAccount.objects.get(user=buyer, kind="wallet")
    assert (
        f"VIOLATION: account #{wallet.pk} (wallet of user {buyer.pk}) caches 999 but its entries "
        "sum to 1000000000\n" in err
    )
    assert err.endswith("ledger_check: 1 violation(s)\n")
    assert _gauges(client)["dragonfly_ledger_check_violations"] == 1

    LedgerAccount.objects.filter(user=buyer, kind="wallet").update(held_nusd=7)
    assert ledger_check_task() == 2  # the beat task records its result the same way
    assert _gauges(client)["dragonfly_ledger_check_violations"] == 2


def test_a_redis_failure_does_not_change_the_answer(market, monkeypatch):
    buyer, _, _ = market

    def down(**_):
        raise ConnectionError("redis is down")

    monkeypatch.setattr("observability.metrics.ledger_check_record", down)
    assert _run_check()[0] == 0
    LedgerAccount.objects.filter(user=buyer, kind="wallet").update(balance_nusd=999)
    assert _run_check()[0] == 1
