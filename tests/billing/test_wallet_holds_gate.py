"""A wallet's holds gate (migration 0015): while a Stripe reversal has it closed, hold placements
on that wallet wait (single, batched, either implementation) and settlements do not; another
wallet's holds never wait. Real commits, the gate closed from a second PostgreSQL session."""

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import orjson
import psycopg
import pytest
from django.db import connection

from billing import services
from billing.models import AccountKind, Hold, HoldStatus
from billing.services.ledger import account_for_user
from tests.accounts.factories import user_make
from tests.billing.factories import fund, settlement_make
from tests.market.factories import listing_row_make

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("billing_impl")]

HOLD = 1_000_000_000  # $1


@contextmanager
def _gate_closed(user) -> Iterator[psycopg.Connection]:
    """The buyer's gate closed by another session's open transaction, as a reversal booking."""
    wallet = account_for_user(user_id=user.pk, kind=AccountKind.WALLET)
    params = connection.get_connection_params()
    params = {k: v for k, v in params.items() if k not in ("cursor_factory", "context")}
    with psycopg.connect(**params) as other:
        other.execute("SELECT df_wallet_holds_gate(%s, true)", [wallet.pk])
        yield other
        other.rollback()


def _advisory_waiters(other: psycopg.Connection) -> int:
    return other.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND wait_event_type = 'Lock' AND wait_event = 'advisory'"
    ).fetchone()[0]


def _in_thread(call) -> tuple[threading.Thread, list[object]]:
    done: list[object] = []

    def run():
        try:
            done.append(call())
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, done


def _waits_at_the_gate(other: psycopg.Connection, thread: threading.Thread) -> bool:
    """True once the call is seen waiting on the advisory lock; False if it finished first."""
    for _ in range(1000):
        if _advisory_waiters(other):
            return True
        if not thread.is_alive():
            return False
        thread.join(0.01)
    raise AssertionError("the call neither finished nor waited at the gate in 10 s")


def _hold_one(user, request_id: str):
    return lambda: services.hold_place(request_id=request_id, user_id=user.pk, amount_nusd=HOLD)


def _hold_batch(*users):
    def call():
        items = [
            {"request_id": f"b{n}", "user_id": user.pk, "amount_nusd": HOLD}
            for n, user in enumerate(users)
        ]
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT * FROM df_hold_place_batch(%s::jsonb)", [orjson.dumps(items).decode()]
            )
            return cursor.fetchall()

    return call


def test_a_hold_waits_while_the_gate_is_closed_and_lands_after():
    buyer = user_make(verified=None)
    fund(buyer, "5")
    with _gate_closed(buyer) as other:
        thread, done = _in_thread(_hold_one(buyer, "r1"))
        assert _waits_at_the_gate(other, thread)
        assert not done and not Hold.objects.filter(request_id="r1").exists()
    thread.join(10)
    assert Hold.objects.get(request_id="r1").status == HoldStatus.ACTIVE


def test_a_batch_of_holds_waits_for_every_wallet_it_touches(billing_impl):
    if billing_impl != "sql":
        pytest.skip("batches are the SQL fast path's")
    open_buyer, gated_buyer = user_make(verified=None), user_make(verified=None)
    fund(open_buyer, "5")
    fund(gated_buyer, "5")
    with _gate_closed(gated_buyer) as other:
        thread, done = _in_thread(_hold_batch(open_buyer, gated_buyer))
        assert _waits_at_the_gate(other, thread)
        assert not done and not Hold.objects.exists()  # one transaction: nothing yet
    thread.join(10)
    assert done == [[("b0", "placed"), ("b1", "placed")]]


def test_another_wallets_hold_and_a_settlement_pass_a_closed_gate():
    buyer, other_buyer, seller = (user_make(verified=None) for _ in range(3))
    fund(buyer, "5")
    fund(other_buyer, "5")
    listing = listing_row_make(seller=seller)
    services.hold_place(request_id="r1", user_id=buyer.pk, amount_nusd=HOLD)
    with _gate_closed(buyer):
        services.hold_place(request_id="o1", user_id=other_buyer.pk, amount_nusd=HOLD)
        services.request_settle(
            settlement=settlement_make(buyer=buyer, seller=seller, listing=listing, request_id="r1")
        )
        assert Hold.objects.get(request_id="r1").status == HoldStatus.SETTLED
        assert Hold.objects.get(request_id="o1").status == HoldStatus.ACTIVE
