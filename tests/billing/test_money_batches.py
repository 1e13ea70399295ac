"""Batched holds and settlements on the event loop (event_loop.batching, migration 0007):
concurrent calls share one statement and one commit, and each caller still gets exactly what a
single call gives. Real PostgreSQL commits, real concurrency (one loop, and two loops in threads)."""

import asyncio
import logging
import threading
import time

import orjson
import psycopg
import pytest
from django.conf import settings
from django.db import connection

from billing import selectors, services
from billing.checks import ledger_violations
from billing.errors import BillingError, InsufficientBalance
from billing.models import AccountKind, Hold, LedgerAccount, TransactionKind, UsageRecord
from billing.money import usd_to_nusd
from billing.services import fastpath, fastpath_async
from billing.services.ledger import account_for_user, account_platform, ledger_post
from billing.services.settlement import billable_cost_nusd
from tests.accounts.factories import user_make
from tests.billing.factories import fund, settlement_make
from tests.market.factories import listing_row_make

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _postgresql_only():
    if connection.vendor != "postgresql":
        pytest.skip("the async fast path needs PostgreSQL")


@pytest.fixture
def statements(monkeypatch, market):
    """The SQL of every statement the async fast path sends (still sent, for real), in a process
    that already knows the market seller's fee (as after its first settlement for them)."""
    fastpath.fee_learn(seller_id=market[1].pk)
    sent: list[str] = []
    real = fastpath_async._rows

    async def spy(sql, params):
        sent.append(sql)
        return await real(sql, params)

    monkeypatch.setattr(fastpath_async, "_rows", spy)
    return sent


def _run(*coros):
    async def main():
        try:
            return await asyncio.gather(*coros, return_exceptions=True)
        finally:
            await fastpath_async.pools_close()

    return asyncio.run(main())


def _batches(sent: list[str], name: str) -> int:
    return sum(1 for sql in sent if name in sql)


def test_concurrent_holds_share_batches_and_keep_single_call_outcomes(market, statements):
    buyer, _, _ = market
    broke = user_make(verified=None)  # no wallet at all
    services.hold_place(request_id="held-before", user_id=buyer.pk, amount_nusd=1)
    holds = [
        fastpath_async.hold_place(
            request_id=f"b-{i}", user_id=buyer.pk, amount_nusd=usd_to_nusd("0.03")
        )
        for i in range(40)
    ]
    results = _run(
        *holds,
        fastpath_async.hold_place(request_id="broke", user_id=broke.pk, amount_nusd=5),
        fastpath_async.hold_place(request_id="held-before", user_id=buyer.pk, amount_nusd=1),
    )
    # $1 - 1 nano-dollar covers 33 holds of $0.03; the rest are refused, like single calls
    assert [r is None for r in results[:40]] == [True] * 33 + [False] * 7
    assert all(isinstance(r, InsufficientBalance) for r in results[33:40])
    assert isinstance(results[40], InsufficientBalance)  # no wallet
    assert results[41] is None  # the same request id again: idempotent, reserves nothing more
    assert selectors.wallet_summary(user=buyer)["held_nusd"] == 33 * usd_to_nusd("0.03") + 1
    assert Hold.objects.filter(status="active").count() == 34
    # all 42 queued before the loop ran the batcher: one statement, one commit
    assert len(statements) == _batches(statements, "df_hold_place_batch") == 1
    assert ledger_violations() == []


def test_concurrent_settlements_share_batches_and_charge_each_request_once(market, statements):
    buyer, seller, listing = market
    fund(buyer, "9")
    settlements = []
    for i in range(30):
        services.hold_place(request_id=f"s-{i}", user_id=buyer.pk, amount_nusd=5_000_000)
        settlements.append(
            settlement_make(
                buyer=buyer,
                seller=seller,
                listing=listing,
                request_id=f"s-{i}",
                output_units=0 if i in (0, 3) else 100 * i,
                outcome="completed"
                if i % 3
                else ("upstream_failed" if i % 2 == 0 else "client_disconnected"),
            )
        )
    results = _run(*(fastpath_async.request_settle(settlement=s) for s in settlements))

    expected = [billable_cost_nusd(s) for s in settlements]
    assert [r.cost_nusd for r in results] == expected
    assert [r.already_settled for r in results] == [False] * 30
    # Every side of the policy is in the batch: an upstream that failed before content is free,
    # a buyer who left after the upstream accepted pays the prompt (1,000 x $0.27/M).
    assert (expected[0], expected[3]) == (0, 270_000) and expected[6] > 270_000
    wallet = selectors.wallet_summary(user=buyer)
    assert wallet["balance_nusd"] == usd_to_nusd("10") - sum(expected)
    assert wallet["held_nusd"] == 0
    assert selectors.earnings_summary(seller=seller)["available_nusd"] == sum(
        r.seller_credit_nusd for r in results
    )
    assert UsageRecord.objects.count() == 30
    assert len(statements) == _batches(statements, "df_settle_apply_batch") == 1
    assert ledger_violations() == []

    again = _run(*(fastpath_async.request_settle(settlement=s) for s in settlements[:5]))
    assert [r.already_settled for r in again] == [True] * 5
    assert UsageRecord.objects.count() == 30


def _mixed_settlements(buyer, other, seller, listing, prefix: str) -> list:
    """One of each case a settlement batch sends to the single function, between usual ones:
    no hold, a voided hold, already settled, another buyer's hold, a repeated request id."""
    for suffix in ("a", "voided", "settled", "b", "c"):
        services.hold_place(request_id=f"{prefix}{suffix}", user_id=buyer.pk, amount_nusd=900_000)
    services.hold_place(request_id=f"{prefix}theirs", user_id=other.pk, amount_nusd=900_000)
    services.hold_void(request_id=f"{prefix}voided", reason="reaped")

    def make(suffix, **overrides):
        return settlement_make(
            buyer=buyer, seller=seller, listing=listing, request_id=f"{prefix}{suffix}", **overrides
        )

    services.request_settle(settlement=make("settled"))
    return [
        make("a"),
        make("no-hold"),
        make("voided", output_units=900),  # more than the hold covered: charged from the balance
        make("settled"),
        make("b", output_units=0, outcome="upstream_failed"),  # nothing delivered: free
        make("theirs"),
        make("c", output_units=2000),  # more than the hold covers: the rest is overrun
        make("a"),
    ]


def test_a_mixed_settlement_batch_gives_each_item_what_a_single_call_gives(market, statements):
    """The usual items settle in sets, the others through the single function, in one batch; the
    same requests settled one at a time by the synchronous service give the same answers and
    leave the same balances."""
    buyer, seller, listing = market
    fund(buyer, "9")
    other = user_make(verified=None)
    fund(other, "1")

    def outcome(r):
        return (r.already_settled, r.cost_nusd, r.seller_credit_nusd, r.fee_nusd)

    def balances():
        wallet = selectors.wallet_summary(user=buyer)
        return (
            wallet["balance_nusd"],
            wallet["held_nusd"],
            selectors.wallet_summary(user=other)["held_nusd"],
            selectors.earnings_summary(seller=seller)["available_nusd"],
        )

    start = balances()
    one_by_one = []
    for s in _mixed_settlements(buyer, other, seller, listing, "single-"):
        try:
            one_by_one.append(outcome(services.request_settle(settlement=s)))
        except BillingError as exc:
            one_by_one.append(type(exc))
    middle = balances()

    batched = _run(
        *(
            fastpath_async.request_settle(settlement=s)
            for s in _mixed_settlements(buyer, other, seller, listing, "batch-")
        )
    )
    assert [type(r) if isinstance(r, Exception) else outcome(r) for r in batched] == one_by_one
    assert one_by_one[5] is BillingError  # another buyer's hold
    assert [one_by_one[i][0] for i in (0, 3, 7)] == [False, True, True]  # settled, again, again
    assert _batches(statements, "df_settle_apply_batch") == len(statements) == 1  # no retry
    end = balances()
    assert [m - a for a, m in zip(start, middle, strict=True)] == [
        e - m for m, e in zip(middle, end, strict=True)
    ]
    assert middle[0] < start[0] and middle[2] == 900_000 and middle[3] > 0
    assert UsageRecord.objects.count() == 2 * 6  # each round: 6 settled (one of them before)
    assert ledger_violations() == []


def test_an_item_without_a_hold_is_charged_what_the_items_before_it_left_available(
    market, statements
):
    """A batch moves its items' balances once, at its end (migration 0021); an item without a
    live hold is charged what the wallet has available, so what the items before it booked is
    moved first: here the hold the first item settles is what pays for the second."""
    buyer, seller, listing = market
    fund(buyer, "1")
    available = selectors.wallet_summary(user=buyer)["available_nusd"]
    services.hold_place(request_id="held", user_id=buyer.pk, amount_nusd=available)

    def make(request_id):
        return settlement_make(buyer=buyer, seller=seller, listing=listing, request_id=request_id)

    held, unheld = _run(
        fastpath_async.request_settle(settlement=make("held")),
        fastpath_async.request_settle(settlement=make("unheld")),
    )
    assert _batches(statements, "df_settle_apply_batch") == len(statements) == 1
    cost = held.cost_nusd
    assert unheld.cost_nusd == cost > 0 and 2 * cost <= available
    usage = {u.request_id: (u.buyer_debit_nusd, u.overrun_nusd) for u in UsageRecord.objects.all()}
    assert usage == {"held": (cost, 0), "unheld": (cost, 0)}
    wallet = selectors.wallet_summary(user=buyer)
    assert (wallet["held_nusd"], wallet["available_nusd"]) == (0, available - 2 * cost)
    assert ledger_violations() == []


def test_a_batch_drawn_from_a_lease_past_its_end_moves_each_balance_once(market, statements):
    """Four items drawn from one lease in one batch: two it covers, one it covers in part (its
    debit ends the lease, the rest is overrun) and one after its end, charged from what the wallet
    has available, as a request whose own hold was voided is. The lease, the wallet and the
    ledger end as the four settled one by one would leave them."""
    buyer, seller, listing = market
    lease = "req_0000beefleasefeedfacecafebeef"

    def make(request_id):
        return settlement_make(
            buyer=buyer, seller=seller, listing=listing, request_id=request_id, lease_id=lease
        )

    cost = billable_cost_nusd(make("r-0"))
    fund(buyer, "1")
    start = selectors.wallet_summary(user=buyer)
    services.hold_place(request_id=lease, user_id=buyer.pk, amount_nusd=5 * cost // 2)

    results = _run(*(fastpath_async.request_settle(settlement=make(f"r-{n}")) for n in range(4)))
    assert _batches(statements, "df_settle_apply_batch") == len(statements) == 1
    assert [r.cost_nusd for r in results] == [cost] * 4
    split = {
        request_id: (debit, overrun)
        for request_id, debit, overrun in UsageRecord.objects.values_list(
            "request_id", "buyer_debit_nusd", "overrun_nusd"
        )
    }
    assert split == {
        "r-0": (cost, 0),
        "r-1": (cost, 0),
        "r-2": (cost // 2, cost // 2),
        "r-3": (cost, 0),
    }
    held = Hold.objects.get(request_id=lease)
    assert (held.status, held.amount_nusd) == ("settled", cost // 2)
    wallet = selectors.wallet_summary(user=buyer)
    assert wallet["balance_nusd"] == start["balance_nusd"] - 7 * cost // 2
    assert wallet["held_nusd"] == start["held_nusd"]
    assert ledger_violations() == []


def test_a_batch_answered_out_of_its_items_order_gives_nobody_a_result(market, monkeypatch):
    """Rows are handed to callers by position only after their ids are checked, by a check that
    `python -O` cannot strip: a batch whose answer is not its items, in order, fails every caller
    instead of giving one request another's hold."""
    buyer, _, _ = market
    fund(buyer, "9")
    real = fastpath_async._rows

    async def reversed_rows(sql, params):
        return list(reversed(await real(sql, params)))

    monkeypatch.setattr(fastpath_async, "_rows", reversed_rows)
    results = _run(
        *(
            fastpath_async.hold_place(request_id=f"r-{i}", user_id=buyer.pk, amount_nusd=1_000)
            for i in range(4)
        )
    )
    assert [type(r) for r in results] == [RuntimeError] * 4
    assert "not its items, in order" in str(results[0])


def test_a_batch_that_fails_as_a_whole_is_applied_one_by_one(market, statements):
    """An item that cannot settle (its ledger key was taken) fails alone; the rest settle."""
    buyer, seller, listing = market
    promotions = account_platform(kind=AccountKind.PROMOTIONS)
    fees = account_platform(kind=AccountKind.FEE_REVENUE)
    ledger_post(
        kind=TransactionKind.ADJUSTMENT,
        idempotency_key="settle:taken",
        lines=[(promotions, -1), (fees, 1)],
        memo="occupies the settlement key of request 'taken'",
    )
    ids = ["first", "taken", "ok-1", "ok-2", "ok-3"]
    for request_id in ids:
        services.hold_place(request_id=request_id, user_id=buyer.pk, amount_nusd=5_000_000)
    results = _run(
        *(
            fastpath_async.request_settle(
                settlement=settlement_make(
                    buyer=buyer, seller=seller, listing=listing, request_id=request_id
                )
            )
            for request_id in ids
        )
    )
    assert isinstance(results[1], Exception)
    assert [r.cost_nusd for i, r in enumerate(results) if i != 1] == [820_000] * 4
    assert set(UsageRecord.objects.values_list("request_id", flat=True)) == {
        "first",
        "ok-1",
        "ok-2",
        "ok-3",
    }
    assert Hold.objects.get(request_id="taken").status == "active"  # left for the reaper
    assert _batches(statements, "df_settle_apply_batch") == 1  # tried, rolled back, retried
    assert len(statements) == 1 + 5 + 1  # the batch, each item alone, "taken" once more
    assert ledger_violations() == []


def test_a_caller_that_leaves_still_has_its_settlement_applied(market):
    buyer, seller, listing = market
    for request_id in ("ahead", "leaves"):
        services.hold_place(request_id=request_id, user_id=buyer.pk, amount_nusd=5_000_000)

    async def main():
        def settle(request_id):
            return fastpath_async.request_settle(
                settlement=settlement_make(
                    buyer=buyer, seller=seller, listing=listing, request_id=request_id
                )
            )

        ahead = asyncio.create_task(settle("ahead"))
        leaves = asyncio.create_task(settle("leaves"))
        await asyncio.sleep(0)  # both queued: "ahead" in flight, "leaves" waiting behind it
        leaves.cancel()
        await ahead
        with pytest.raises(asyncio.CancelledError):
            await leaves
        await fastpath_async.pools_close()  # waits for what the batchers still hold

    asyncio.run(main())
    assert UsageRecord.objects.filter(request_id="leaves").count() == 1
    assert Hold.objects.get(request_id="leaves").status == "settled"
    assert ledger_violations() == []


def test_batches_from_two_event_loops_cross_accounts_without_deadlock(caplog):
    """Two loops (threads), each batching holds and settlements over the same two buyers and two
    sellers in opposite orders: the batches lock rows in one global order, so none deadlocks
    (PostgreSQL would abort one, and its batch would be retried one by one: none is)."""
    caplog.set_level(logging.INFO, logger="billing.services.fastpath_async")
    buyers = [user_make(verified=None), user_make(verified=None)]
    sellers = [user_make(verified=None), user_make(verified=None)]
    listings = [listing_row_make(seller=s, name=f"l{i}") for i, s in enumerate(sellers)]
    for buyer in buyers:
        fund(buyer, "5")
    errors: list[BaseException] = []
    settled: list[int] = []

    def worker(flip: int) -> None:
        order = [(i + flip) % 2 for i in range(2)]

        async def one(n: int) -> int:
            b = order[n % 2]
            s = order[(n // 2) % 2]
            request_id = f"x-{flip}-{n}"
            await fastpath_async.hold_place(
                request_id=request_id, user_id=buyers[b].pk, amount_nusd=2_000_000
            )
            result = await fastpath_async.request_settle(
                settlement=settlement_make(
                    buyer=buyers[b], seller=sellers[s], listing=listings[s], request_id=request_id
                )
            )
            return result.cost_nusd

        async def main():
            try:
                return await asyncio.gather(*(one(n) for n in range(60)))
            finally:
                await fastpath_async.pools_close()

        try:
            settled.extend(asyncio.run(main()))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(flip,)) for flip in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert settled == [820_000] * 120
    spent = sum(usd_to_nusd("5") - selectors.wallet_summary(user=b)["balance_nusd"] for b in buyers)
    assert spent == 120 * 820_000
    assert sum(selectors.wallet_summary(user=b)["held_nusd"] for b in buyers) == 0
    assert UsageRecord.objects.count() == 120
    assert not [r for r in caplog.records if "failed as a whole" in r.getMessage()]
    assert ledger_violations() == []


def _connection_params() -> dict:
    params = connection.get_connection_params()
    return {k: v for k, v in params.items() if k not in ("cursor_factory", "context")}


class _Session:
    """A PostgreSQL session of its own (autocommit) that runs one statement in a thread."""

    def __init__(self) -> None:
        self.conn = psycopg.connect(**_connection_params(), autocommit=True)
        self.pid = self.conn.info.backend_pid
        self.outcome: list[object] = []
        self.thread: threading.Thread | None = None

    def start(self, sql: str, params) -> None:
        def run() -> None:
            try:
                self.outcome.append(self.conn.execute(sql, params).fetchall())
            except psycopg.Error as exc:
                self.outcome.append(exc)

        self.thread = threading.Thread(target=run)
        self.thread.start()

    def waits_on_a_lock(self, observer: psycopg.Connection) -> bool:
        for _ in range(1000):
            (wait,) = observer.execute(
                "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [self.pid]
            ).fetchone()
            if wait == "Lock":
                return True
            time.sleep(0.01)
        return False

    def finish(self) -> object:
        assert self.thread is not None
        self.thread.join(30)
        self.conn.close()
        return self.outcome[0]


def test_a_batch_creates_the_platform_accounts_before_it_locks_a_wallet():
    """A fresh database: the first settlements create the overrun and fee revenue accounts. A
    single settlement creates them, then waits for a seller's earnings row (held by a third
    session) before it reaches the buyer's wallet (a higher id); a batch for the same buyer starts
    meanwhile. The batch must wait for the new accounts before it locks the wallet. Locking it
    first (0019's batch), the single settlement then waits on the batch's wallet and the batch on
    the settlement's new accounts: a deadlock, which PostgreSQL breaks by failing one of them
    (seen in CI as two event loops' first settlements for one buyer)."""
    first, other = user_make(verified=None), user_make(verified=None)
    first_earnings = account_for_user(user_id=first.pk, kind=AccountKind.EARNINGS)
    buyer = user_make(verified=None)
    fund(buyer, "1")
    wallet = account_for_user(user_id=buyer.pk, kind=AccountKind.WALLET)
    assert first_earnings.pk < wallet.pk  # the single settlement's lock order: earnings, wallet
    assert not LedgerAccount.objects.filter(
        kind__in=[AccountKind.OVERRUN, AccountKind.FEE_REVENUE]
    ).exists()
    listings = {s: listing_row_make(seller=s, name=f"l{s.pk}") for s in (first, other)}
    settlements = []
    for request_id, seller in (("single", first), ("batched-1", other), ("batched-2", other)):
        fastpath.fee_learn(seller_id=seller.pk)
        services.hold_place(request_id=request_id, user_id=buyer.pk, amount_nusd=2_000_000)
        settlements.append(
            settlement_make(
                buyer=buyer, seller=seller, listing=listings[seller], request_id=request_id
            )
        )
    single, batch = _Session(), _Session()
    with psycopg.connect(**_connection_params()) as blocker:
        blocker.execute(
            "SELECT id FROM billing_ledgeraccount WHERE id = %s FOR NO KEY UPDATE",
            [first_earnings.pk],
        )
        single.start(fastpath.SETTLE_SQL, fastpath.settle_params(settlements[0]))
        assert single.waits_on_a_lock(blocker)  # its new accounts made, at the earnings row
        batch.start(
            fastpath_async.SETTLE_BATCH_SQL,
            (
                orjson.dumps([fastpath.settle_fields(s) for s in settlements[1:]]).decode(),
                settings.DRAGONFLY_DEFAULT_FEE_BPS,
            ),
        )
        assert batch.waits_on_a_lock(blocker)  # on the single settlement's new accounts
        blocker.rollback()
    assert [row[0] for row in single.finish()] == ["settled"]
    assert [row[1] for row in batch.finish()] == ["settled", "settled"]
    assert UsageRecord.objects.filter(buyer=buyer).count() == 3
    assert selectors.wallet_summary(user=buyer)["held_nusd"] == 0
    assert ledger_violations() == []
